"""Sign-in with an authenticator app or a recovery code, through a real gateway and mail.

The first factor is a magic link (real SMTP); the second is posted as the verify page's
forms post it. Each test checks the session (and its ``mfa_time``), the audit trail and
what reached Ledger.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

from sqlalchemy import select

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.store import tables
from gateway.store.factors import factors_of
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack
from tests.support.totp import (
    PENDING,
    SESSION,
    SignIns,
    code_now,
    cookies_of,
    enrol,
    mfa_settings,
    recovery_codes,
    user_id_of,
)


async def mfa_time_of(stack: Stack, session_token: str) -> float | None:
    id_hash = hashlib.sha256(session_token.encode()).hexdigest()
    async with stack.app[ENGINE].connect() as conn:
        row = (
            await conn.execute(
                select(tables.sessions.c.mfa_time).where(tables.sessions.c.id_hash == id_hash)
            )
        ).one()
    return None if row.mfa_time is None else float(row.mfa_time)


async def test_a_person_with_an_app_lands_on_verify_and_a_code_starts_a_two_factor_session(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        secret = await enrol(stack, "alice@acme.test")
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending("alice@acme.test")
        page = await stack.client.get(
            "/.gatehold/login/verify", headers={"Cookie": f"{PENDING}={pending}"}
        )
        text = await page.text()
        assert page.status == 200
        assert "Code from your authenticator app" in text
        assert "Recovery code" not in text, "no recovery codes were made"
        hits = await stack.ledger_total()
        before = time.time()
        answer = await sign_ins.send_code(pending, code_now(secret))
        assert answer.status == 303
        assert answer.headers["Location"] == "/api/invoices/7"
        session = cookies_of(answer)[SESSION]
        mfa_time = await mfa_time_of(stack, session)
        assert mfa_time is not None and mfa_time >= before - 1
        invoice = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": f"{SESSION}={session}"}
        )
        assert invoice.status == 200
        assert await stack.ledger_total() > hits
        logins = [e for e in await stack.events("login") if e["actor"] == "alice@acme.test"]
        assert logins[-1]["data"]["factor"] == "totp"
        assert logins[-1]["data"]["mfa"] == "yes"
        assert logins[-1]["method"] == "magic-link"
        again = await sign_ins.send_code(pending, code_now(secret))
        assert again.status == 400, "a pending sign-in serves once"


async def test_wrong_codes_use_up_the_sign_in_and_nothing_is_forwarded(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port, max_attempts=3)) as stack:
        secret = await enrol(stack, "alice@acme.test")
        right = code_now(secret)
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending("alice@acme.test")
        hits = await stack.ledger_total()
        answers = [await sign_ins.send_code(pending, wrong) for _ in range(3)]
        assert [a.status for a in answers] == [303, 303, 400]
        assert answers[0].headers["Location"] == "/.gatehold/login/verify?error=code-wrong"
        assert "Too many wrong codes" in await answers[2].text()
        assert all(SESSION not in cookies_of(a) for a in answers)
        late = await sign_ins.send_code(pending, right)
        assert late.status == 400, "the right code after the last attempt is too late"
        assert SESSION not in cookies_of(late)
        gone = await stack.client.get(
            "/.gatehold/login/verify", headers={"Cookie": f"{PENDING}={pending}"}
        )
        assert gone.status == 400
        assert await stack.ledger_total() == hits
        failed = await stack.events("login-failed")
        assert [f["data"]["attempts_left"] for f in failed] == ["yes", "yes", "no"]
        assert all(f["data"]["factor"] == "totp" for f in failed)
        assert all(f["reason"] == "code-wrong" and f["decision"] == "deny" for f in failed)
        assert {f["actor"] for f in failed} == {"alice@acme.test"}


async def test_a_recovery_code_signs_in_once_and_the_count_goes_down(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        await enrol(stack, "alice@acme.test")
        codes = await recovery_codes(stack, "alice@acme.test")
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending("alice@acme.test")
        page = await stack.client.get(
            "/.gatehold/login/verify", headers={"Cookie": f"{PENDING}={pending}"}
        )
        assert "Recovery code" in await page.text()
        typed = codes[0].upper().replace("-", " ")
        answer = await sign_ins.send_code(pending, typed, kind="recovery")
        assert answer.status == 303 and SESSION in cookies_of(answer)
        user = await user_id_of(stack, "alice@acme.test")
        assert (await factors_of(stack.app[ENGINE], user)).recovery_codes_left == 9
        used = await stack.events("recovery-code-used")
        assert [(e["actor"], e["data"]["left"]) for e in used] == [("alice@acme.test", 9)]
        logins = [e for e in await stack.events("login") if e["actor"] == "alice@acme.test"]
        assert logins[-1]["data"]["factor"] == "recovery-code"

        pending = await sign_ins.pending("alice@acme.test")
        reused = await sign_ins.send_code(pending, codes[0], kind="recovery")
        assert reused.status == 303
        assert reused.headers["Location"] == "/.gatehold/login/verify?error=code-wrong"
        assert SESSION not in cookies_of(reused)
        assert (await factors_of(stack.app[ENGINE], user)).recovery_codes_left == 9


async def test_a_person_without_a_second_factor_signs_in_with_the_link_alone(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        answer = await SignIns(stack, inbox).first_factor("bob@globex.test", rd="/")
        assert answer.status == 303 and answer.headers["Location"] == "/"
        session = cookies_of(answer)[SESSION]
        assert await mfa_time_of(stack, session) is None


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SETUP = re.compile(r'name="setup" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
CODE = re.compile(r"<li><code>([0-9a-z]{5}-[0-9a-z]{5})</code></li>")


async def test_setting_up_an_app_from_the_account_page_shows_codes_once(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    _, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        cookie = stack.cookie("bob@globex.test")
        account = await stack.client.get("/.gatehold/account", headers=cookie)
        assert "Set up an authenticator app" in await account.text()
        setup = await stack.client.get("/.gatehold/account/totp", headers=cookie)
        page = await setup.text()
        assert setup.status == 200 and "<svg" in page and "<img" not in page
        assert "default-src 'none'" in setup.headers["Content-Security-Policy"]
        secret = SECRET.search(page)
        sealed, csrf = SETUP.search(page), CSRF.search(page)
        assert secret and sealed and csrf
        user = await user_id_of(stack, "bob@globex.test")
        assert not (await factors_of(stack.app[ENGINE], user)).totp, "not before a code"
        form = {"csrf": csrf.group(1), "setup": sealed.group(1)}
        wrong = await stack.client.post(
            "/.gatehold/account/totp", data={**form, "code": "12345x"}, headers=cookie
        )
        assert wrong.status == 400 and "That code is not right" in await wrong.text()
        code = code_now(secret.group(1).replace(" ", ""))
        done = await stack.client.post(
            "/.gatehold/account/totp", data={**form, "code": code}, headers=cookie
        )
        shown = CODE.findall(await done.text())
        assert done.status == 200 and len(shown) == 10
        assert done.headers["Cache-Control"] == "no-store"
        factors = await factors_of(stack.app[ENGINE], user)
        assert factors.totp and factors.recovery_codes_left == 10
        account = await stack.client.get("/.gatehold/account", headers=cookie)
        later = await account.text()
        assert "Recovery codes left: <strong>10</strong>" in later
        assert not any(c in later for c in shown), "codes are never shown again"
        kinds = [
            (e["kind"], e["data"].get("via"))
            for e in await stack.events("totp-enrolled")
            + await stack.events("totp-enrol-failed")
            + await stack.events("recovery-codes-made")
        ]
        assert kinds == [
            ("totp-enrolled", "account"),
            ("totp-enrol-failed", None),
            ("recovery-codes-made", None),
        ]


async def test_a_person_the_rules_ask_for_a_second_factor_enrols_during_sign_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        stack.app[AUTH_PAGES].mfa_required = lambda memberships: True  # as `mfa: required`
        first = await SignIns(stack, inbox).first_factor("bob@globex.test", rd="/")
        assert first.status == 303 and first.headers["Location"] == "/.gatehold/login/enrol"
        pending = cookies_of(first)[PENDING]
        cookie = {"Cookie": f"{PENDING}={pending}", "Origin": "http://gatehold.test"}
        enrol_page = await stack.client.get("/.gatehold/login/enrol", headers=cookie)
        assert "/.gatehold/login/enrol/totp" in await enrol_page.text()
        setup = await stack.client.get("/.gatehold/login/enrol/totp", headers=cookie)
        page = await setup.text()
        secret, sealed = SECRET.search(page), SETUP.search(page)
        assert setup.status == 200 and secret and sealed
        user = await user_id_of(stack, "bob@globex.test")
        assert not (await factors_of(stack.app[ENGINE], user)).totp
        code = code_now(secret.group(1).replace(" ", ""))
        confirmed = await stack.client.post(
            "/.gatehold/login/enrol/totp",
            data={"setup": sealed.group(1), "code": code},
            headers=cookie,
        )
        shown = await confirmed.text()
        assert confirmed.status == 200 and len(CODE.findall(shown)) == 10
        assert SESSION not in cookies_of(confirmed), "no session until Continue"
        proceed = re.search(r'name="proceed" value="([^"]+)"', shown)
        assert proceed
        done = await stack.client.post(
            "/.gatehold/login/enrol/totp/continue",
            data={"proceed": proceed.group(1)},
            headers=cookie,
            allow_redirects=False,
        )
        assert done.status == 303 and done.headers["Location"] == "/"
        session = cookies_of(done)[SESSION]
        assert await mfa_time_of(stack, session) is not None
        logins = [e for e in await stack.events("login") if e["actor"] == "bob@globex.test"]
        assert [(e["data"]["factor"], e["data"]["mfa"]) for e in logins] == [("totp", "yes")]
        enrolled = await stack.events("totp-enrolled")
        assert [(e["actor"], e["data"]["via"]) for e in enrolled] == [
            ("bob@globex.test", "sign-in")
        ]
        again = await stack.client.post(
            "/.gatehold/login/enrol/totp/continue",
            data={"proceed": proceed.group(1)},
            headers=cookie,
            allow_redirects=False,
        )
        assert again.status == 400, "Continue finishes one sign-in, once"


async def test_with_set_up_turned_off_no_new_app_can_be_added_but_existing_ones_are_asked_for(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = mfa_settings(port)
    settings["auth"]["totp"] = {"enabled": False}
    async with running_stack(tmp_path, **settings) as stack:
        cookie = stack.cookie("bob@globex.test")
        account = await stack.client.get("/.gatehold/account", headers=cookie)
        assert "Set up an authenticator app" not in await account.text()
        setup = await stack.client.get("/.gatehold/account/totp", headers=cookie)
        assert setup.status == 404
        secret = await enrol(stack, "alice@acme.test")
        sign_ins = SignIns(stack, inbox)
        answer = await sign_ins.send_code(
            await sign_ins.pending("alice@acme.test"), code_now(secret)
        )
        assert answer.status == 303 and SESSION in cookies_of(answer)


async def test_an_older_session_signs_in_again_with_its_app_to_replace_it(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        secret = await enrol(stack, "alice@acme.test")
        stale = {"Cookie": f"{SESSION}={await stack.mint('alice@acme.test', auth_age=1200)}"}
        asked = await stack.client.get(
            "/.gatehold/account/totp", headers=stale, allow_redirects=False
        )
        target = "/.gatehold/account/totp"
        assert asked.headers["Location"] == f"/.gatehold/login?rd={target}&step_up=1"
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending("alice@acme.test", rd=target)
        answer = await sign_ins.send_code(pending, code_now(secret))
        assert answer.status == 303 and answer.headers["Location"] == target
        fresh = {"Cookie": f"{SESSION}={cookies_of(answer)[SESSION]}"}
        page = await stack.client.get(target, headers=fresh)
        assert page.status == 200
        assert "Replace your authenticator app" in await page.text()
