"""Account takeover through an email claim: no provider signs in as someone by email alone.

Two real OpenID Providers (npm oidc-provider) on loopback: ``corp``, the company's, and
``partner``, one whose accounts anybody can shape — here it asserts the superadmin's
address. A new (issuer, subject) is tied to an existing person only through an invite
addressed to that provider, an explicit link while signed in, or ``link_by_email`` with
``email_verified: true``. Every refusal: a 400 page that does not tell whether the
account exists, no session, nothing upstream, one audited ``login-failed``.
"""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.auth.sessions import hash_token
from gateway.store import sso_invites
from gateway.store import users as user_store
from tests.support import cli
from tests.support.openid_provider import openid_provider, sign_in_at_provider
from tests.support.servers_base import free_port
from tests.support.sso import ACCOUNTS, FLOW, GRANTS, SESSION, Sso
from tests.support.stack import running_stack

ADMIN = "admin@example.test"
PARTNER_ACCOUNTS: dict[str, dict[str, Any]] = {
    "mallory": {"email": ADMIN, "groups": ["acme-admins"]},
    "mallory-upper": {"email": "ADMIN@Example.TEST", "groups": ["acme-admins"]},
    "mallory-rita": {"email": "rita@acme.test", "groups": ["acme-admins"]},
    "alice-here": {"email": "alice@acme.test", "groups": []},
    "alice-unverified": {"email": "alice@acme.test", "email_verified": False},
    "alice-no-claim": {"email": "alice@acme.test", "omit": ["email_verified"]},
    "alice-string": {"email": "alice@acme.test", "email_verified": "true"},
    "alice-null": {"email": "alice@acme.test", "email_verified": None},
    "alice-private": {"email": "alice.private@mail.test", "groups": []},
}
CORP_ACCOUNTS: dict[str, dict[str, Any]] = {
    **ACCOUNTS,
    "alice-again": {"email": "alice@acme.test", "groups": []},
    "alice-no-claim": {"email": "alice@acme.test", "omit": ["email_verified"]},
}


class Two(Sso):
    """The stack with both providers; ``provider`` is corp's."""

    async def refused(
        self, login: str, reason: str, *, provider: str = "partner", shown: str | None = None
    ) -> None:
        """Sign in as ``login``: refused with ``reason`` (page: ``shown``), nothing else."""
        before = await self.stack.ledger_total()
        failures = len(await self.failures())
        callback, flow = await self.provider_callback(login, provider=provider)
        self.stack.client.session.cookie_jar.clear()
        status, body, session = await self.deliver(callback, flow)
        assert status == 400 and session is None
        assert f"<code>{shown or reason}</code>" in body
        if shown is not None:
            assert reason not in body  # the page does not say the account exists (I9)
        failed = (await self.failures())[failures:]
        assert [(f["reason"], f["decision"], f["data"]["provider"]) for f in failed] == [
            (reason, "deny", provider)
        ]
        assert await self.stack.ledger_total() == before  # nothing reached the app
        assert login not in [subject for subject, _ in await self.accounts(provider)]

    async def signs_in(self, login: str, *, provider: str) -> str:
        callback, flow = await self.provider_callback(login, provider=provider)
        self.stack.client.session.cookie_jar.clear()
        status, location, session = await self.deliver(callback, flow)
        assert (status, location) == (303, "/api/invoices/7") and session, location
        return session

    async def accounts(self, provider: str) -> list[tuple[str, str]]:
        """(subject, user email) of every account tied through ``provider``."""
        async with self.stack.app[ENGINE].connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT a.subject, u.email FROM external_accounts a "
                    "JOIN users u ON u.id = a.user_id WHERE a.provider = :p ORDER BY a.subject"
                ),
                {"p": provider},
            )
            return [(r.subject, r.email) for r in rows]

    async def linked_email(self, session: str) -> str:
        principal = await self.stack.app[AUTH_PAGES].sessions.principal(session)
        assert principal is not None
        return principal.email

    async def invite(self, email: str, provider: str, *, ttl: float = 3600.0) -> None:
        engine = self.stack.app[ENGINE]
        user = await user_store.get_user_by_email(engine, email)
        assert user is not None
        await sso_invites.invite(
            engine, email=email, provider=provider, user_id=user.id, ttl=ttl, now=time.time()
        )

    async def linked_events(self) -> list[tuple[str, str, str]]:
        return [
            (e["actor"], e["data"]["provider"], e["data"]["via"])
            for e in await self.stack.events("account-linked")
        ]


@asynccontextmanager
async def two_providers(
    tmp_path: Path, *, corp: dict[str, Any] | None = None, partner: dict[str, Any] | None = None
) -> AsyncIterator[Two]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    corp_cb, partner_cb = (f"{base}/.gatehold/oidc/{n}/callback" for n in ("corp", "partner"))
    async with (
        openid_provider(redirect_uris=[corp_cb], accounts=CORP_ACCOUNTS) as corp_op,
        openid_provider(redirect_uris=[partner_cb], accounts=PARTNER_ACCOUNTS) as partner_op,
    ):
        providers = [
            corp_op.provider_settings("corp", **{"provisioning": "invite", **(corp or {})}),
            partner_op.provider_settings(
                "partner",
                **{"provisioning": "jit", "group_grants": GRANTS, **(partner or {})},
            ),
        ]
        async with running_stack(tmp_path, port=port, auth={"oidc": providers}) as stack:
            yield Two(stack, base, corp_op)


@pytest.mark.parametrize("provisioning", ["jit", "invite"])
@pytest.mark.parametrize("login", ["mallory", "mallory-upper"], ids=["same case", "upper case"])
async def test_a_second_provider_asserting_the_superadmins_email_is_refused(
    tmp_path: Path, provisioning: str, login: str
) -> None:
    async with two_providers(tmp_path, partner={"provisioning": provisioning}) as two:
        await two.refused(login, "account-not-linked", shown="not-invited")
        admin = await user_store.get_user_by_email(two.stack.app[ENGINE], ADMIN)
        assert admin is not None and admin.superadmin
        failed = (await two.failures())[-1]
        assert failed["actor"] == ADMIN and failed["decision"] == "deny"


async def test_just_in_time_never_hands_over_or_changes_an_existing_person(
    tmp_path: Path,
) -> None:
    """The claim's groups would make rita an admin: neither the tie nor the grant happens."""
    async with two_providers(tmp_path) as two:
        engine = two.stack.app[ENGINE]
        before = await user_store.get_user_by_email(engine, "rita@acme.test")
        await two.refused("mallory-rita", "account-not-linked", shown="not-invited")
        after = await user_store.get_user_by_email(engine, "rita@acme.test")
        assert before is not None and after == before
        # the same answer as for an address nobody has: the page cannot tell them apart
        await two.refused("erin", "not-invited", provider="corp")


@pytest.mark.parametrize(
    ("login", "reason"),
    [
        ("alice-unverified", "email-unverified"),
        ("alice-no-claim", "email-unverified"),
        ("alice-string", "email-unverified"),
        ("alice-null", "email-unverified"),
    ],
    ids=["email_verified false", "no email_verified", "the string 'true'", "null"],
)
async def test_link_by_email_needs_email_verified_to_be_true(
    tmp_path: Path, login: str, reason: str
) -> None:
    async with two_providers(tmp_path, partner={"link_by_email": True}) as two:
        await two.refused(login, reason)


async def test_without_the_verified_email_rule_a_missing_claim_still_links_nobody(
    tmp_path: Path,
) -> None:
    partner = {"link_by_email": True, "require_verified_email": False}
    async with two_providers(tmp_path, partner=partner) as two:
        await two.refused("alice-no-claim", "account-not-linked", shown="not-invited")
        await two.refused("alice-string", "account-not-linked", shown="not-invited")


async def test_link_by_email_links_a_verified_email_when_the_provider_opted_in(
    tmp_path: Path,
) -> None:
    async with two_providers(tmp_path, partner={"link_by_email": True}) as two:
        session = await two.signs_in("alice-here", provider="partner")
        assert await two.linked_email(session) == "alice@acme.test"
        assert await two.accounts("partner") == [("alice-here", "alice@acme.test")]
        assert await two.linked_events() == [("alice@acme.test", "partner", "email")]
        # the next sign-in finds the account by (issuer, subject): no second link
        await two.signs_in("alice-here", provider="partner")
        assert len(await two.linked_events()) == 1


async def test_an_invite_addressed_to_a_provider_links_once_and_only_there(
    tmp_path: Path,
) -> None:
    async with two_providers(tmp_path) as two:
        await two.refused("alice", "account-not-linked", provider="corp", shown="not-invited")
        await two.invite("alice@acme.test", "corp")
        # the invite names corp: partner's say-so about the same address is not enough
        await two.refused("alice-here", "account-not-linked", shown="not-invited")

        session = await two.signs_in("alice", provider="corp")
        assert await two.linked_email(session) == "alice@acme.test"
        assert await two.linked_events() == [("alice@acme.test", "corp", "invite")]
        assert await sso_invites.pending_for(two.stack.app[ENGINE], "alice@acme.test", 0) == []
        # consumed: another corp account with the same address is not let in on it
        await two.refused("alice-again", "account-not-linked", provider="corp", shown="not-invited")
        await two.signs_in("alice", provider="corp")  # the linked one keeps working


async def test_an_invite_needs_a_verified_email_and_expires(tmp_path: Path) -> None:
    async with two_providers(tmp_path) as two:
        await two.invite("alice@acme.test", "corp")
        await two.refused("alice-no-claim", "email-unverified", provider="corp")
        await two.invite("alice@acme.test", "corp", ttl=-1.0)  # renewed, but already expired
        await two.refused("alice", "account-not-linked", provider="corp", shown="not-invited")


async def test_a_signed_in_person_links_another_account_to_themselves(tmp_path: Path) -> None:
    async with two_providers(tmp_path) as two:
        alice = two.stack.cookies["alice@acme.test"]
        own_page = {"Cookie": f"{SESSION}={alice}"}
        page = await (await two.stack.client.get("/.gatehold/sessions", headers=own_page)).text()
        found = re.search(r'href="(/\.gatehold/oidc/partner/start\?link=1[^"]*)"', page)
        assert found, page
        start = await two.stack.client.get(
            html.unescape(found.group(1)), headers=own_page, allow_redirects=False
        )
        assert start.status == 303
        authorize, flow = start.headers["Location"], start.cookies[FLOW].value
        assert "prompt=login" in authorize  # the provider asks who is being linked, now
        callback = await sign_in_at_provider(
            authorize, "alice-private", until=two.callback("partner")
        )
        two.stack.client.session.cookie_jar.clear()
        status, location, session = await two.deliver(callback, flow, session=alice)
        assert (status, location) == (303, "/.gatehold/sessions")
        assert session and session != alice
        assert await two.accounts("partner") == [("alice-private", "alice@acme.test")]
        assert await two.linked_events() == [("alice@acme.test", "partner", "signed-in")]
        page = await (
            await two.stack.client.get(
                "/.gatehold/sessions", headers={"Cookie": f"{SESSION}={session}"}
            )
        ).text()
        assert "Partner: linked" in page and "Link Corp" in page
        # from now on that account alone signs in as alice
        later = await two.signs_in("alice-private", provider="partner")
        assert await two.linked_email(later) == "alice@acme.test"


async def test_linking_needs_the_persons_own_page_and_their_session_to_the_end(
    tmp_path: Path,
) -> None:
    async with two_providers(tmp_path) as two:
        alice, bob = two.stack.cookies["alice@acme.test"], two.stack.cookies["bob@globex.test"]
        csrf = two.stack.app[AUTH_PAGES].csrf.token(hash_token(alice))
        before = await two.stack.ledger_total()
        # another site sends a signed-in browser to the link URL: no CSRF token, no link
        for params, session, reason in [
            ({}, alice, "link-csrf"),
            ({"csrf": csrf}, bob, "link-csrf"),
            ({"csrf": csrf}, None, "link-not-signed-in"),
        ]:
            response = await two.stack.client.get(
                "/.gatehold/oidc/partner/start",
                params={"link": "1", **params},
                headers={"Cookie": f"{SESSION}={session}"} if session else {},
                allow_redirects=False,
            )
            assert response.status == 400 and reason in await response.text()
            assert "__Host-gatehold-oidc" not in response.cookies
        # the callback reaches a browser without alice's session (or with bob's)
        for other in (None, bob):
            authorize, flow = await two.start("partner", session=alice, link="1", csrf=csrf)
            callback = await sign_in_at_provider(
                authorize, "alice-private", until=two.callback("partner")
            )
            two.stack.client.session.cookie_jar.clear()
            status, body, session = await two.deliver(callback, flow, session=other)
            assert status == 400 and session is None and "link-session-ended" in body
        reasons = [f["reason"] for f in await two.failures()]
        assert (
            reasons == ["link-csrf", "link-csrf", "link-not-signed-in"] + ["link-session-ended"] * 2
        )
        assert await two.accounts("partner") == []
        assert await two.stack.ledger_total() == before


async def test_an_account_tied_to_one_person_cannot_be_linked_to_another(tmp_path: Path) -> None:
    async with two_providers(tmp_path, partner={"link_by_email": True}) as two:
        await two.signs_in("alice-here", provider="partner")  # tied to alice
        bob = two.stack.cookies["bob@globex.test"]
        csrf = two.stack.app[AUTH_PAGES].csrf.token(hash_token(bob))
        authorize, flow = await two.start("partner", session=bob, link="1", csrf=csrf)
        callback = await sign_in_at_provider(authorize, "alice-here", until=two.callback("partner"))
        two.stack.client.session.cookie_jar.clear()
        status, body, session = await two.deliver(callback, flow, session=bob)
        assert status == 400 and session is None and "account-linked-elsewhere" in body
        assert await two.accounts("partner") == [("alice-here", "alice@acme.test")]


def gatehold_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return cli.gatehold(*args, config=config)


async def test_gatehold_users_add_with_sso_invites_through_that_provider_only(
    tmp_path: Path,
) -> None:
    async with two_providers(tmp_path) as two:
        config = tmp_path / "gatehold.yaml"
        settings = two.stack.settings
        corp = next(p for p in settings.auth.oidc if p.name == "corp")
        config.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(tmp_path),
                    "rules": str(settings.rules_path),
                    "rules_env": settings.rules_env,
                    "auth": {"oidc": [corp.model_dump(mode="json")]},
                }
            )
        )
        add = ["users", "add", "--tenant", "acme", "--role", "standard"]
        for email, sso, problem in [
            ("alice@acme.test", "nosuch", "no OIDC provider 'nosuch'; configured: corp"),
            ("Eve <alice@acme.test>", "corp", "is not a plain email address"),
        ]:
            refused = await asyncio.to_thread(
                gatehold_cli, *add, email, "--sso", sso, config=config
            )
            assert refused.returncode == 2 and problem in refused.stderr
        assert await sso_invites.pending_for(two.stack.app[ENGINE], "alice@acme.test", 0) == []

        added = await asyncio.to_thread(
            gatehold_cli, *add, "Alice@ACME.test", "--sso", "corp", config=config
        )
        assert added.returncode == 0, added.stderr
        assert "invited to sign in with corp" in added.stdout
        invited = [e for e in await two.stack.events("sso-invited")]
        assert [(e["data"]["subject"], e["data"]["provider"]) for e in invited] == [
            ("alice@acme.test", "corp")
        ]
        await two.refused("alice-here", "account-not-linked", shown="not-invited")
        session = await two.signs_in("alice", provider="corp")
        assert await two.linked_email(session) == "alice@acme.test"
        assert await two.linked_events() == [("alice@acme.test", "corp", "invite")]
