"""Step-up by second factor, end to end up to the verify page, then the second factor
shown through ``AuthPages.second_factor_done`` (the TOTP page itself is not part of
this change): the session is replaced by one whose auth time and second-factor time
are now, and the MFA route that refused the old one lets the new one through.
"""

from __future__ import annotations

import re
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pyotp
from aiohttp import ClientResponse
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import select

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES, PENDING_COOKIE
from gateway.identity import COOKIE_NAME
from gateway.store import pending_sign_ins as pending_store
from gateway.store import tables
from tests.support.factors import enrol, mfa_rules, user_id
from tests.support.stack import Stack, running_stack

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
API = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
MFA_LOGIN = "/.gatehold/login?rd=/api/invoices&step_up=1&mfa=1"


def set_cookies(response: ClientResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


async def login_page(stack: Stack, cookie: dict[str, str], url: str = MFA_LOGIN) -> str:
    page = await stack.client.get(url, headers=cookie)
    assert page.status == 200
    return await page.text()


async def start_step_up(
    stack: Stack, cookie: dict[str, str], csrf: str, **headers: str
) -> ClientResponse:
    return await stack.client.post(
        "/.gatehold/login/step-up",
        data={"csrf": csrf, "rd": "/api/invoices"},
        headers=cookie | headers,
        allow_redirects=False,
    )


async def test_a_person_with_a_factor_confirms_it_and_gets_a_new_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules()) as stack:
        engine = stack.app[ENGINE]
        secret = await enrol(engine, "alice@acme.test")
        alice = stack.cookie("alice@acme.test")
        refused = await stack.client.get(
            "/api/invoices", headers=alice | HTML, allow_redirects=False
        )
        assert refused.status == 302 and refused.headers["Location"] == MFA_LOGIN

        html = await login_page(stack, alice)
        assert "Confirm with your second factor" in html
        assert 'action="/.gatehold/login/step-up"' in html
        token = CSRF.search(html)
        assert token is not None

        started = await start_step_up(stack, alice, token.group(1), Origin="http://gatehold.test")
        assert started.status == 303
        assert started.headers["Location"] == "/.gatehold/login/verify"
        pending_token = set_cookies(started)[PENDING_COOKIE]
        (event,) = await stack.events("step-up-started")
        assert event["actor"] == "alice@acme.test" and event["data"]["next"] == "verify"

        both = {"Cookie": f"{alice['Cookie']}; {PENDING_COOKIE}={pending_token}"}
        verify = await stack.client.get("/.gatehold/login/verify", headers=both)
        assert verify.status == 200
        assert "This action needs a second check" in await verify.text()

        # What the TOTP page does once the code is right: the second factor is shown.
        pages = stack.app[AUTH_PAGES]
        request = make_mocked_request(
            "POST", "/.gatehold/login/verify/totp", headers=both, app=stack.app
        )
        pending = await pages.pending_of(request)
        assert pending is not None and pending.purpose == pending_store.STEP_UP
        assert pending.user_id == await user_id(engine, "alice@acme.test")
        assert pending.method == "cli-mint", "the session's own first factor"
        assert pyotp.TOTP(secret).verify(pyotp.TOTP(secret).now())
        before = time.time()
        done = await pages.second_factor_done(request, pending, factor="totp")
        assert done.status == 303 and done.headers["Location"] == "/api/invoices"
        fresh = done.cookies[COOKIE_NAME].value

        old = await stack.client.get("/api/invoices", headers=alice | API)
        assert old.status == 401, "the one-factor session is gone"
        hits = await stack.ledger_total()
        passed = await stack.client.get(
            "/api/invoices", headers={"Cookie": f"{COOKIE_NAME}={fresh}"} | API
        )
        assert passed.status == 200 and await stack.ledger_total() == hits + 1

        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(tables.sessions.c.auth_time, tables.sessions.c.mfa_time).where(
                        tables.sessions.c.revoked_at.is_(None),
                        tables.sessions.c.user_id == pending.user_id,
                    )
                )
            ).one()
        assert row.mfa_time is not None and row.mfa_time >= before
        assert row.auth_time >= before, "the second factor is the fresh proof"
        logins = [e for e in await stack.events("login") if e["actor"] == "alice@acme.test"]
        assert logins[-1]["data"]["factor"] == "totp" and logins[-1]["data"]["mfa"] == "yes"
        assert logins[-1]["data"]["step_up"] == "second-factor"
        assert logins[-1]["data"]["replaces"] == event["data"]["session"], "names the old one"
        again = await pages.second_factor_done(request, pending, factor="totp")
        assert again.status == 400, "a pending step-up serves once"


async def test_a_step_up_ends_only_in_the_session_that_began_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules()) as stack:
        await enrol(stack.app[ENGINE], "alice@acme.test")
        alice = stack.cookie("alice@acme.test")
        token = CSRF.search(await login_page(stack, alice))
        assert token is not None
        started = await start_step_up(stack, alice, token.group(1))
        pending_cookie = f"{PENDING_COOKIE}={set_cookies(started)[PENDING_COOKIE]}"
        pages = stack.app[AUTH_PAGES]

        # Another browser that got hold of the pending cookie, without the session.
        elsewhere = make_mocked_request(
            "POST",
            "/.gatehold/login/verify/totp",
            headers={"Cookie": pending_cookie},
            app=stack.app,
        )
        pending = await pages.pending_of(elsewhere)
        assert pending is not None
        refused = await pages.second_factor_done(elsewhere, pending, factor="totp")
        assert refused.status == 400 and COOKIE_NAME not in refused.cookies
        (failed,) = await stack.events("login-failed")
        assert failed["reason"] == "step-up-session-ended"

        # The session was ended meanwhile (logout, an admin): the step-up dies with it.
        started = await start_step_up(stack, alice, token.group(1))
        pending_cookie = f"{PENDING_COOKIE}={set_cookies(started)[PENDING_COOKIE]}"
        both = {"Cookie": f"{alice['Cookie']}; {pending_cookie}"}
        request = make_mocked_request("POST", "/x", headers=both, app=stack.app)
        pending = await pages.pending_of(request)
        assert pending is not None
        await stack.app[AUTH_PAGES].sessions.revoke_user(pending.user_id)
        ended = await pages.second_factor_done(request, pending, factor="totp")
        assert ended.status == 400 and COOKIE_NAME not in ended.cookies


async def test_a_person_without_a_factor_is_led_to_enrol(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules()) as stack:
        alice = stack.cookie("alice@acme.test")
        html = await login_page(stack, alice)
        assert "Set up a second factor" in html and "Confirm with your" not in html
        token = CSRF.search(html)
        assert token is not None
        started = await start_step_up(stack, alice, token.group(1))
        assert started.status == 303
        assert started.headers["Location"] == "/.gatehold/login/enrol"
        assert PENDING_COOKIE in set_cookies(started)
        (event,) = await stack.events("step-up-started")
        assert event["data"]["next"] == "enrol"


async def test_a_stale_sign_in_may_step_up_with_the_second_factor(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await enrol(stack.app[ENGINE], "carol@acme.test")
        carol = {"Cookie": f"{COOKIE_NAME}={await stack.mint('carol@acme.test', auth_age=3600)}"}
        refused = await stack.client.post(
            "/api/invoices/export", headers=carol | HTML, allow_redirects=False
        )
        assert refused.status == 401, "a POST is answered with a page, not sent away"
        url = "/.gatehold/login?rd=/api/invoices/export&step_up=1"
        assert "Confirm with your second factor" in await login_page(stack, carol, url)
        # Without a factor, a stale sign-in is only asked to sign in again.
        assert "second factor" not in await login_page(stack, stack.cookie("alice@acme.test"), url)


async def test_no_offer_to_someone_not_signed_in_or_not_sent_by_a_step_up(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules()) as stack:
        assert "second factor" not in await login_page(stack, {})
        alice = stack.cookie("alice@acme.test")
        assert "second factor" not in await login_page(stack, alice, "/.gatehold/login?rd=/")


async def test_a_forged_step_up_is_refused_and_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules()) as stack:
        engine = stack.app[ENGINE]
        await enrol(engine, "alice@acme.test")
        alice = stack.cookie("alice@acme.test")
        token = CSRF.search(await login_page(stack, alice))
        assert token is not None
        attempts = [
            (alice, "not-the-token", {}, "csrf-rejected"),
            (alice, token.group(1), {"Origin": "https://evil.example"}, "origin-forbidden"),
            (stack.cookie("bob@globex.test"), token.group(1), {}, "csrf-rejected"),
        ]
        for cookie, csrf, headers, reason in attempts:
            answer = await start_step_up(stack, cookie, csrf, **headers)
            assert answer.status == 403, reason
            assert PENDING_COOKIE not in set_cookies(answer)
            assert reason in await answer.text()
        refusals = await stack.events("step-up-refused")
        assert [e["reason"] for e in refusals] == [a[3] for a in attempts]
        async with engine.connect() as conn:
            left = (await conn.execute(select(tables.pending_sign_ins.c.id_hash))).all()
        assert left == [], "no pending step-up was opened"

        anonymous = await start_step_up(stack, {}, token.group(1))
        assert anonymous.status == 303
        assert anonymous.headers["Location"].startswith("/.gatehold/login?rd=")
