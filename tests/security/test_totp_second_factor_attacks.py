"""Attacks on the second factor by someone who holds the first (a mailbox, a password).

Each test makes the attack through the real gateway and shows it failed: no session
cookie, nothing forwarded to Ledger, and the audit row that records it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from sqlalchemy import insert

from gateway.app import ENGINE
from gateway.auth.totp import new_secret
from gateway.store import tables
from gateway.store.engine import writing
from gateway.store.factors import factors_of
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack
from tests.support.totp import (
    PENDING,
    SESSION,
    SignIns,
    authenticators_of,
    code_now,
    cookies_of,
    enrol,
    mfa_settings,
    recovery_codes,
    user_id_of,
)

ALICE = "alice@acme.test"
WRONG_PAGE = "/.gatehold/login/verify?error=code-wrong"


async def refused_attempts(stack: Stack) -> list[dict[str, str]]:
    return [
        {"actor": e["actor"], "reason": e["reason"], **e["data"]}
        for e in await stack.events("login-failed")
    ]


async def test_a_code_that_signed_in_once_is_refused_the_second_time(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        secret = await enrol(stack, ALICE)
        sign_ins = SignIns(stack, inbox)
        code = code_now(secret)
        first = await sign_ins.send_code(await sign_ins.pending(ALICE), code)
        assert first.status == 303 and SESSION in cookies_of(first)
        hits = await stack.ledger_total()
        replay = await sign_ins.send_code(await sign_ins.pending(ALICE), code)
        assert replay.status == 303 and replay.headers["Location"] == WRONG_PAGE
        assert SESSION not in cookies_of(replay)
        older = await sign_ins.send_code(
            await sign_ins.pending(ALICE), code_now(secret, offset=-30)
        )
        assert older.headers["Location"] == WRONG_PAGE, "nor an older code after a newer one"
        assert await stack.ledger_total() == hits
        assert [(a["actor"], a["factor"], a["reason"]) for a in await refused_attempts(stack)] == [
            (ALICE, "totp", "code-wrong")
        ] * 2


async def test_a_code_from_another_persons_app_is_refused(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        await enrol(stack, ALICE)
        bobs = await enrol(stack, "bob@globex.test")
        sign_ins = SignIns(stack, inbox)
        hits = await stack.ledger_total()
        answer = await sign_ins.send_code(await sign_ins.pending(ALICE), code_now(bobs))
        assert answer.headers["Location"] == WRONG_PAGE and SESSION not in cookies_of(answer)
        assert await stack.ledger_total() == hits
        assert [(a["actor"], a["reason"]) for a in await refused_attempts(stack)] == [
            (ALICE, "code-wrong")
        ]


async def test_guessing_stops_after_max_attempts_even_with_the_right_code_next(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port, max_attempts=5)) as stack:
        secret = await enrol(stack, ALICE)
        right = code_now(secret)
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending(ALICE)
        hits = await stack.ledger_total()
        guesses = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 6)]
        answers = [await sign_ins.send_code(pending, guess) for guess in guesses]
        assert [a.status for a in answers] == [303] * 4 + [400]
        assert "Too many wrong codes" in await answers[-1].text()
        gone = answers[-1].headers["Set-Cookie"]
        assert gone.startswith(f"{PENDING}=") and "Max-Age=0" in gone, "the pending cookie goes"
        late = await sign_ins.send_code(pending, right)
        assert late.status == 400 and SESSION not in cookies_of(late)
        assert await stack.ledger_total() == hits
        attempts = await refused_attempts(stack)
        assert len(attempts) == 5
        assert [a["attempts_left"] for a in attempts] == ["yes"] * 4 + ["no"]


async def test_a_recovery_code_is_used_once_and_only_by_its_owner(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        await enrol(stack, ALICE)
        await enrol(stack, "bob@globex.test")
        alices = await recovery_codes(stack, ALICE)
        bobs = await recovery_codes(stack, "bob@globex.test")
        sign_ins = SignIns(stack, inbox)
        used = await sign_ins.send_code(await sign_ins.pending(ALICE), alices[0], kind="recovery")
        assert used.status == 303 and SESSION in cookies_of(used)
        hits = await stack.ledger_total()
        again = await sign_ins.send_code(await sign_ins.pending(ALICE), alices[0], kind="recovery")
        foreign = await sign_ins.send_code(await sign_ins.pending(ALICE), bobs[0], kind="recovery")
        for answer in (again, foreign):
            assert answer.headers["Location"] == WRONG_PAGE and SESSION not in cookies_of(answer)
        assert await stack.ledger_total() == hits
        engine = stack.app[ENGINE]
        assert (await factors_of(engine, await user_id_of(stack, ALICE))).recovery_codes_left == 9
        bob = await user_id_of(stack, "bob@globex.test")
        assert (await factors_of(engine, bob)).recovery_codes_left == 10, "bob's code unspent"
        assert [(a["factor"], a["reason"]) for a in await refused_attempts(stack)] == [
            ("recovery-code", "code-wrong")
        ] * 2


async def test_a_code_posted_from_another_site_is_refused_and_not_counted(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port, max_attempts=2)) as stack:
        secret = await enrol(stack, ALICE)
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending(ALICE)
        forged = await sign_ins.send_code(pending, code_now(secret), origin="https://evil.test")
        assert forged.status == 403 and SESSION not in cookies_of(forged)
        for _ in range(3):  # more than max_attempts: none of them counts
            await sign_ins.send_code(pending, "000000", origin="https://evil.test")
        cross_site = await stack.client.post(
            "/.gatehold/login/verify/totp",
            data={"code": code_now(secret)},
            headers={"Cookie": f"{PENDING}={pending}", "Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        )
        assert cross_site.status == 403 and SESSION not in cookies_of(cross_site)
        assert await refused_attempts(stack) == []
        # Our pages say no-referrer, so browsers send "Origin: null": the cookie binds it.
        answer = await sign_ins.send_code(pending, code_now(secret), origin="null")
        assert answer.status == 303 and SESSION in cookies_of(answer)


async def test_the_first_factor_alone_cannot_enrol_a_new_app_over_an_existing_one(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        await enrol(stack, ALICE)
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending(ALICE)
        cookie = {"Cookie": f"{PENDING}={pending}"}
        setup = await stack.client.get(
            "/.gatehold/login/enrol/totp", headers=cookie, allow_redirects=False
        )
        assert setup.status == 303 and setup.headers["Location"] == "/.gatehold/login/verify"
        posted = await stack.client.post(
            "/.gatehold/login/enrol/totp",
            data={"setup": "x", "code": "123456"},
            headers=cookie,
            allow_redirects=False,
        )
        assert posted.status == 303 and posted.headers["Location"] == "/.gatehold/login/verify"
        skipped = await stack.client.post(
            "/.gatehold/login/enrol/totp/continue",
            data={"proceed": "forged"},
            headers=cookie,
            allow_redirects=False,
        )
        assert skipped.status == 400 and SESSION not in cookies_of(skipped)
        assert await stack.events("totp-enrolled") == []
        assert [e["actor"] for e in await stack.events("login")] == []


SETUP = re.compile(r'name="setup" value="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def test_adding_replacing_or_removing_an_app_needs_a_recent_sign_in_and_the_csrf_token(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    _, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        await enrol(stack, ALICE)
        user = await user_id_of(stack, ALICE)
        stale = {"Cookie": f"{SESSION}={await stack.mint(ALICE, auth_age=1200)}"}
        account = await stack.client.get("/.gatehold/account", headers=stale)
        csrf = CSRF.search(await account.text())
        assert csrf
        setup = await stack.client.get(
            "/.gatehold/account/totp", headers=stale, allow_redirects=False
        )
        step_up = "/.gatehold/login?rd=/.gatehold/account/totp&step_up=1"
        assert setup.status == 303 and setup.headers["Location"] == step_up
        for path in (
            "/.gatehold/account/totp",
            "/.gatehold/account/totp/remove",
            "/.gatehold/account/recovery-codes",
        ):
            answer = await stack.client.post(
                path, data={"csrf": csrf.group(1)}, headers=stale, allow_redirects=False
            )
            assert answer.status == 303 and "step_up=1" in answer.headers["Location"]
        bob = {"Cookie": f"{SESSION}={await stack.mint('bob@globex.test', auth_age=1200)}"}
        first = await stack.client.get(
            "/.gatehold/account/totp", headers=bob, allow_redirects=False
        )
        assert first.status == 303 and first.headers["Location"] == step_up, (
            "a stolen session alone cannot add its thief's app either"
        )
        fresh = {"Cookie": f"{SESSION}={await stack.mint(ALICE)}"}
        forged = await stack.client.post(
            "/.gatehold/account/totp/remove", data={"csrf": "forged"}, headers=fresh
        )
        assert forged.status == 403
        assert (await factors_of(stack.app[ENGINE], user)).totp, "still there"
        assert [e["actor"] for e in await stack.events("csrf-rejected")] == [ALICE]
        account = await stack.client.get("/.gatehold/account", headers=fresh)
        csrf = CSRF.search(await account.text())
        assert csrf
        removed = await stack.client.post(
            "/.gatehold/account/totp/remove",
            data={"csrf": csrf.group(1)},
            headers=fresh,
            allow_redirects=False,
        )
        assert removed.headers["Location"] == "/.gatehold/account?notice=totp-removed"
        assert not (await factors_of(stack.app[ENGINE], user)).totp
        assert [e["actor"] for e in await stack.events("totp-removed")] == [ALICE]


async def test_a_set_up_form_of_one_person_cannot_enrol_another(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    _, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        bob = stack.cookie("bob@globex.test")
        page = await (await stack.client.get("/.gatehold/account/totp", headers=bob)).text()
        sealed = SETUP.search(page)
        secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
        assert sealed and secret
        alice = stack.cookie(ALICE)
        sessions = await (await stack.client.get("/.gatehold/sessions", headers=alice)).text()
        csrf = CSRF.search(sessions)  # alice's own, valid token
        assert csrf
        answer = await stack.client.post(
            "/.gatehold/account/totp",
            data={
                "csrf": csrf.group(1),
                "setup": sealed.group(1),
                "code": code_now(secret.group(1).replace(" ", "")),
            },
            headers=alice,
            allow_redirects=False,
        )
        assert answer.status == 303 and "error=setup-expired" in answer.headers["Location"]
        assert not (await factors_of(stack.app[ENGINE], await user_id_of(stack, ALICE))).totp
        failed = await stack.events("totp-enrol-failed")
        assert [(e["actor"], e["reason"]) for e in failed] == [(ALICE, "setup-expired")]


async def test_an_unconfirmed_app_is_no_factor_at_sign_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    """A person whose second factor is a passkey, with an app set up but never confirmed
    (a row written by an older version, or by hand): its codes must not pass."""
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mfa_settings(port)) as stack:
        user = await user_id_of(stack, ALICE)
        secret = new_secret()
        seal = authenticators_of(stack).seal
        async with writing(stack.app[ENGINE]) as conn:
            await conn.execute(
                insert(tables.passkeys).values(
                    user_id=user, credential_id="cred", public_key=b"k", created_at=time.time()
                )
            )
            await conn.execute(
                insert(tables.totp_factors).values(
                    user_id=user, secret=seal.seal(secret), created_at=time.time()
                )
            )
        sign_ins = SignIns(stack, inbox)
        pending = await sign_ins.pending(ALICE)
        page = await stack.client.get(
            "/.gatehold/login/verify", headers={"Cookie": f"{PENDING}={pending}"}
        )
        assert "Code from your authenticator app" not in await page.text()
        hits = await stack.ledger_total()
        answer = await sign_ins.send_code(pending, code_now(secret))
        assert answer.headers["Location"] == WRONG_PAGE and SESSION not in cookies_of(answer)
        assert await stack.ledger_total() == hits
        assert [(a["factor"], a["reason"]) for a in await refused_attempts(stack)] == [
            ("totp", "code-wrong")
        ]
