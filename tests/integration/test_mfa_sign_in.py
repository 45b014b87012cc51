"""Who is asked for a second factor at sign-in follows the rules in force: a person in
an MFA tenant (or holding an MFA role) with no factor is led to enrol, one with a
factor to verify, anyone else gets a session at once; a rules reload changes that for
the very next sign-in, and after an admin resets someone's factors their next sign-in
leads them to enrol again. Real magic links over SMTP."""

from __future__ import annotations

from pathlib import Path

from gateway.app import ENGINE, with_rules
from gateway.auth.handlers import PENDING_COOKIE
from gateway.config.loader import load_rules
from gateway.identity import COOKIE_NAME
from gateway.live import LIVE
from tests.integration.test_magic_link import ask_for_link, cookies_set, follow_link, mail_settings
from tests.support.admin_api import as_person
from tests.support.factors import enrol, mfa_rules
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack


async def sign_in(stack: Stack, inbox: Inbox, email: str, count: int) -> tuple[str, set[str]]:
    """Sign in by magic link (the ``count``-th mail to ``email``): where it leads, and
    which cookies it sets."""
    assert (await ask_for_link(stack, email, rd="/documents")).status == 200
    link = Inbox.link_in(await inbox.wait_for(email, count=count))
    answer = await follow_link(stack, link)
    assert answer.status == 303
    return answer.headers["Location"], set(cookies_set(answer))


async def reload(stack: Stack, text: str) -> None:
    rules = stack.settings.rules_path
    rules.write_text(text)
    live, settings, engine = stack.app[LIVE], stack.settings, stack.app[ENGINE]
    assert await live.reload(
        str(rules),
        lambda: load_rules(rules, env=settings.rules_env),
        lambda gateway, ruleset: with_rules(gateway, settings, ruleset, engine),
    )


async def test_sign_in_asks_for_a_second_factor_as_the_live_rules_say(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = mail_settings(port)
    async with running_stack(tmp_path, rules_text=mfa_rules(), **settings) as stack:
        # No tenant requires a second factor (the route's mfa asks nothing at sign-in).
        where, cookies = await sign_in(stack, inbox, "alice@acme.test", 1)
        assert where == "/documents" and COOKIE_NAME in cookies

        await reload(stack, mfa_rules(tenants=("acme",)))
        where, cookies = await sign_in(stack, inbox, "alice@acme.test", 2)
        assert where == "/.gatehold/login/enrol", "no factor yet: enrol first"
        assert PENDING_COOKIE in cookies and COOKIE_NAME not in cookies
        where, cookies = await sign_in(stack, inbox, "bob@globex.test", 1)
        assert where == "/documents" and COOKIE_NAME in cookies, "globex asks nothing"

        await enrol(stack.app[ENGINE], "alice@acme.test")
        where, cookies = await sign_in(stack, inbox, "alice@acme.test", 3)
        assert where == "/.gatehold/login/verify" and COOKIE_NAME not in cookies

        superadmin = await as_person(stack, "admin@example.test")
        reset = await superadmin.call("POST", "/users/alice@acme.test/factors/reset")
        assert reset.status == 200 and reset.body["totp"] is True
        where, cookies = await sign_in(stack, inbox, "alice@acme.test", 4)
        assert where == "/.gatehold/login/enrol", "after a reset, the next sign-in enrols anew"

        firsts = [e["data"]["next"] for e in await stack.events("login-first-factor")]
        assert firsts == ["enrol", "verify", "enrol"]


async def test_an_mfa_role_asks_its_holders_only(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    rules = mfa_rules(route=False).replace(
        "  admin:    {can: [read, write, delete, export, download, manage_users]}",
        "  admin:    {can: [read, write, delete, export, download, manage_users], mfa: required}",
    )
    assert "mfa: required}" in rules
    async with running_stack(tmp_path, rules_text=rules, **mail_settings(port)) as stack:
        where, _ = await sign_in(stack, inbox, "carol@acme.test", 1)
        assert where == "/.gatehold/login/enrol"
        where, cookies = await sign_in(stack, inbox, "alice@acme.test", 1)
        assert where == "/documents" and COOKIE_NAME in cookies
