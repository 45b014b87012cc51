"""Local passwords through a whole gateway: sign in, throttle, rehash, set and reset."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.context import GATEWAY
from gateway.errors import StoreUnavailable
from gateway.store import passwords as password_store
from gateway.store import users as user_store
from tests.integration.test_magic_link import ask_for_link, follow_link
from tests.support.passwords import (
    ALICE_PASSWORD,
    change_password,
    give_password,
    password_settings,
    session_cookie,
    sign_in,
    stored_hash,
    user_id_of,
)
from tests.support.smtp import Inbox
from tests.support.stack import Stack, replica, running_stack

PROXIED = {"server": {"public_url": "http://gatehold.test", "trusted_proxies": ["127.0.0.1/32"]}}
MISMATCH = "That email and password do not match."


async def test_the_right_password_signs_in_and_is_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        login = await stack.client.get("/.gatehold/login?rd=/api/invoices/7")
        page = await login.text()
        assert 'action="/.gatehold/login/password"' in page and "Forgot your password?" in page
        answer = await sign_in(stack, "Alice@ACME.test", ALICE_PASSWORD, rd="/api/invoices/7")
        assert answer.status == 303 and answer.headers["Location"] == "/api/invoices/7"
        token = session_cookie(answer)
        assert token
        invoice = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": f"__Host-gatehold={token}"}
        )
        assert invoice.status == 200
        [login_row] = [e for e in await stack.events("login") if e["method"] == "password"]
        assert login_row["actor"] == "alice@acme.test"


async def test_the_password_form_is_absent_unless_enabled(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        page = await (await stack.client.get("/.gatehold/login")).text()
        assert "/.gatehold/login/password" not in page
        tried = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)
        assert tried.status == 404 and session_cookie(tried) is None


async def make_dora_deactivated(stack: Stack) -> None:
    engine = stack.app[ENGINE]
    await user_store.add_user(engine, "dora@acme.test", memberships=[])
    await give_password(stack, "dora@acme.test", "dora's right password, long")
    await user_store.set_active(engine, await user_id_of(stack, "dora@acme.test"), False)


async def test_unknown_wrong_and_deactivated_get_the_same_answer_in_the_same_time(
    tmp_path: Path,
) -> None:
    settings = password_settings(
        free_failures=100, argon2={"time_cost": 1, "memory_cost": 16384, "parallelism": 1}
    )
    async with running_stack(tmp_path, **settings) as stack:
        await give_password(stack, "alice@acme.test")
        await make_dora_deactivated(stack)
        cases = {
            "unknown": ("nobody@acme.test", "some password or other"),
            "wrong": ("alice@acme.test", "not alice's password at all"),
            "deactivated": ("dora@acme.test", "dora's right password, long"),
        }
        timings: dict[str, list[float]] = {kind: [] for kind in cases}
        bodies: dict[str, set[str]] = {kind: set() for kind in cases}
        statuses: dict[str, set[int]] = {kind: set() for kind in cases}
        order = list(cases)
        for i in range(30):
            for kind in order[i % 3 :] + order[: i % 3]:  # interleaved, rotating
                email, password = cases[kind]
                await stack.app[GATEWAY].audit.settled()
                started = time.perf_counter()
                answer = await sign_in(stack, email, password)
                body = await answer.text()
                timings[kind].append(time.perf_counter() - started)
                statuses[kind].add(answer.status)
                bodies[kind].add(body.replace(email, "EMAIL"))
                assert session_cookie(answer) is None
        assert statuses["unknown"] == statuses["wrong"] == statuses["deactivated"] == {400}
        assert bodies["unknown"] == bodies["wrong"] == bodies["deactivated"]
        assert len(bodies["unknown"]) == 1 and MISMATCH in bodies["unknown"].pop()
        medians = {kind: statistics.median(values) for kind, values in timings.items()}
        print("median answers (ms):", {k: round(v * 1000, 2) for k, v in medians.items()})
        for kind in ("wrong", "deactivated"):
            assert 0.7 <= medians[kind] / medians["unknown"] <= 1.4, medians
        reasons = {e["reason"] for e in await stack.events("login-failed")}
        assert reasons == {"unknown-user", "wrong-password", "user-inactive"}


async def test_a_hash_with_old_parameters_is_redone_at_sign_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        user_id = await user_id_of(stack, "alice@acme.test")
        old = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=2).hash(ALICE_PASSWORD)
        await password_store.store_hash(stack.app[ENGINE], user_id, old, now=time.time())
        answer = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)
        assert answer.status == 303
        renewed = await stored_hash(stack, "alice@acme.test")
        assert renewed is not None and renewed != old
        assert renewed.startswith("$argon2id$v=19$m=9216,t=1,p=1$")
        again = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)
        assert again.status == 303 and await stored_hash(stack, "alice@acme.test") == renewed


BACKOFF = {"free_failures": 2, "backoff_base": "1s", "backoff_max": "2s"}


async def test_wrong_tries_wait_longer_and_longer_per_account_and_the_wait_ends(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **PROXIED, **password_settings(**BACKOFF)) as stack:
        await give_password(stack, "alice@acme.test")
        waits = []
        for i in range(2):  # the free failures, from two clients
            assert (
                await sign_in(stack, "alice@acme.test", "wrong", client=f"10.0.0.{i}")
            ).status == 400
        for i in range(3):
            throttled = await sign_in(stack, "alice@acme.test", "wrong", client=f"10.0.1.{i}")
            assert throttled.status == 429
            waits.append(int(throttled.headers["Retry-After"]))
            assert "Too many password tries" in await throttled.text()
            await asyncio.sleep(waits[-1])
            assert (
                await sign_in(stack, "alice@acme.test", "wrong", client=f"10.0.2.{i}")
            ).status == 400
        assert waits == [1, 2, 2], "doubling, capped at backoff_max"
        other = await sign_in(stack, "bob@globex.test", "wrong", client="10.0.3.1")
        assert other.status == 400, "another account is not throttled"
        blocked = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD, client="10.0.3.2")
        assert blocked.status == 429, "even the right password waits: no oracle while throttled"
        await asyncio.sleep(int(blocked.headers["Retry-After"]))
        right = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD, client="10.0.3.3")
        assert right.status == 303, "the wait ends; the owner signs in"
        for i in range(2):  # the right password cleared the account's count
            assert (
                await sign_in(stack, "alice@acme.test", "wrong", client=f"10.0.4.{i}")
            ).status == 400
        throttled_events = [
            e for e in await stack.events("login-failed") if e["reason"] == "password-throttled"
        ]
        assert len(throttled_events) == 4


async def test_one_client_trying_many_accounts_is_throttled(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **PROXIED, **password_settings(**BACKOFF)) as stack:
        for email in ("alice@acme.test", "bob@globex.test"):
            answer = await sign_in(stack, email, "Summer2024!", client="198.51.100.9")
            assert answer.status == 400
        sprayed = await sign_in(stack, "carol@acme.test", "Summer2024!", client="198.51.100.9")
        assert sprayed.status == 429
        elsewhere = await sign_in(stack, "carol@acme.test", "Summer2024!", client="198.51.100.10")
        assert elsewhere.status == 400, "the throttle is per client as well as per account"


async def test_known_and_unknown_addresses_are_throttled_alike(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **PROXIED, **password_settings(**BACKOFF)) as stack:
        await give_password(stack, "alice@acme.test")
        answers = {}
        for email in ("alice@acme.test", "nobody@acme.test"):
            for i in range(2):
                await sign_in(stack, email, "wrong", client=f"10.{len(answers)}.0.{i}")
            answers[email] = await sign_in(stack, email, "wrong", client=f"10.{len(answers)}.1.1")
        known, unknown = answers.values()
        assert known.status == unknown.status == 429
        assert known.headers["Retry-After"] == unknown.headers["Retry-After"]
        assert (await known.text()).replace("alice@acme.test", "E") == (
            await unknown.text()
        ).replace("nobody@acme.test", "E")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest) -> Any:
    from tests.support.postgres import fresh_pg_engine

    if request.param == "sqlite":
        yield {}
        return
    async with fresh_pg_engine("passwords") as engine:
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        yield {"store": {"dsn": dsn}}


async def test_a_second_replica_counts_the_same_tries(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    settings = {**store, **PROXIED, **password_settings(**BACKOFF)}
    async with running_stack(tmp_path, follow=True, **settings) as a, replica(a) as b:
        await give_password(a, "alice@acme.test")
        assert (await sign_in(a, "alice@acme.test", "wrong", client="10.0.0.1")).status == 400
        assert (await sign_in(b, "alice@acme.test", "wrong", client="10.0.0.2")).status == 400
        on_b = await sign_in(b, "alice@acme.test", "wrong", client="10.0.0.3")
        on_a = await sign_in(a, "alice@acme.test", ALICE_PASSWORD, client="10.0.0.4")
        assert on_b.status == on_a.status == 429


async def test_the_owner_signs_in_by_email_link_while_password_tries_are_throttled(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **PROXIED, **password_settings(port, **BACKOFF)) as stack:
        await give_password(stack, "alice@acme.test")
        for i in range(3):
            await sign_in(stack, "alice@acme.test", "attacker guess", client=f"203.0.113.{i}")
        assert (await sign_in(stack, "alice@acme.test", "x", client="203.0.113.9")).status == 429
        assert (await ask_for_link(stack, "alice@acme.test", rd="/api/invoices/7")).status == 200
        signed_in = await follow_link(stack, Inbox.link_in(await inbox.wait_for("alice@acme.test")))
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/api/invoices/7"
        assert session_cookie(signed_in)


async def test_a_store_that_cannot_count_tries_refuses_every_address_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")

        async def down(*args: Any, **kwargs: Any) -> None:
            raise StoreUnavailable("the store is down")

        monkeypatch.setattr("gateway.store.password_attempts.begin_try", down)
        known = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)
        unknown = await sign_in(stack, "nobody@acme.test", ALICE_PASSWORD)
        assert known.status == unknown.status == 503
        assert known.headers["Retry-After"] == unknown.headers["Retry-After"] == "30"
        assert session_cookie(known) is None


async def test_a_form_posted_from_another_site_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        forged = await sign_in(
            stack, "alice@acme.test", ALICE_PASSWORD, headers={"Origin": "https://evil.example"}
        )
        assert forged.status == 403 and session_cookie(forged) is None
        cross = await sign_in(
            stack,
            "alice@acme.test",
            ALICE_PASSWORD,
            headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status == 403 and session_cookie(cross) is None
        reasons = [e["reason"] for e in await stack.events("login-failed")]
        assert reasons == ["origin-mismatch", "origin-mismatch"]
        same = await sign_in(
            stack,
            "alice@acme.test",
            ALICE_PASSWORD,
            headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status == 303


async def test_an_invitee_is_offered_a_password_after_the_email_link_and_uses_it(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **password_settings(port)) as stack:
        await ask_for_link(stack, "alice@acme.test", rd="/api/invoices/7")
        signed_in = await follow_link(stack, Inbox.link_in(await inbox.wait_for("alice@acme.test")))
        location = signed_in.headers["Location"]
        assert urlsplit(location).path == "/.gatehold/account/password"
        assert parse_qs(urlsplit(location).query)["rd"] == ["/api/invoices/7"]
        cookie = {"Cookie": f"__Host-gatehold={session_cookie(signed_in)}"}
        offer = await stack.client.get(location, headers=cookie)
        page = await offer.text()
        assert (
            "Choose a password" in page and "Not now" in page and 'href="/api/invoices/7"' in page
        )
        assert "current_password" not in page
        saved = await change_password(
            stack, cookie, "Blue kettles argue quietly", rd="/api/invoices/7"
        )
        assert saved.status == 303
        assert saved.headers["Location"].startswith("/.gatehold/account/password/saved?rd=")
        [event] = await stack.events("password-set")
        assert event["actor"] == "alice@acme.test"
        again = await sign_in(stack, "alice@acme.test", "Blue kettles argue quietly")
        assert again.status == 303


async def test_forgot_password_is_an_email_link_to_a_new_password(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **password_settings(port)) as stack:
        await give_password(stack, "alice@acme.test")
        forgot = await stack.client.get("/.gatehold/login/forgot-password?rd=/api/invoices/7")
        page = await forgot.text()
        assert forgot.status == 200 and 'action="/.gatehold/login/magic"' in page
        rd = "/.gatehold/account/password?rd=%2Fapi%2Finvoices%2F7"
        assert f'value="{rd}"' in page
        for email in ("alice@acme.test", "nobody@acme.test"):  # the same answer for both
            asked = await ask_for_link(stack, email, rd=rd)
            assert asked.status == 200
        signed_in = await follow_link(stack, Inbox.link_in(await inbox.wait_for("alice@acme.test")))
        assert signed_in.headers["Location"] == rd
        cookie = {"Cookie": f"__Host-gatehold={session_cookie(signed_in)}"}
        reset = await change_password(stack, cookie, "Seven lanterns over the harbour")
        assert reset.status == 303
        assert [e["actor"] for e in await stack.events("password-reset")] == ["alice@acme.test"]
        assert (await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)).status == 400
        assert (
            await sign_in(stack, "alice@acme.test", "Seven lanterns over the harbour")
        ).status == 303
        assert stack.app[AUTH_PAGES].passwords is not None


async def test_the_account_page_changes_the_password_and_says_so(tmp_path: Path) -> None:
    from gateway.model import AuthMethod
    from tests.support.passwords import session_by

    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        cookie = await session_by(stack, "alice@acme.test", method=AuthMethod.PASSWORD)
        page = await (await stack.client.get("/.gatehold/account", headers=cookie)).text()
        assert 'action="/.gatehold/account/password"' in page
        assert 'name="current_password"' in page, "a password sign-in must show the current one"
        changed = await change_password(
            stack,
            cookie,
            "Blue kettles argue quietly",
            current=ALICE_PASSWORD,
            rd="/.gatehold/account",
        )
        assert changed.headers["Location"] == "/.gatehold/account?notice=password-saved"
        shown = await stack.client.get(changed.headers["Location"], headers=cookie)
        assert "Your password is saved. Your other sessions have ended." in await shown.text()
        fresh = await session_by(stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK)
        page = await (await stack.client.get("/.gatehold/account", headers=fresh)).text()
        assert 'name="current_password"' not in page, "a fresh email link needs no current one"


async def test_the_account_page_has_no_password_section_unless_enabled(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        page = await stack.client.get("/.gatehold/account", headers=stack.cookie("alice@acme.test"))
        assert page.status == 200 and "/.gatehold/account/password" not in await page.text()


async def test_only_members_without_a_password_are_offered_one_after_an_email_link(
    tmp_path: Path,
) -> None:
    from gateway.auth.magic_link import SignIn
    from tests.support.passwords import passwords_of

    async with running_stack(tmp_path, **password_settings()) as stack:
        guest = await user_store.add_user(stack.app[ENGINE], "guest@else.test", memberships=[])
        alice = await user_id_of(stack, "alice@acme.test")
        offer = passwords_of(stack).after_magic_link
        assert await offer(SignIn(guest, "guest@else.test", "/files/1")) == "/files/1"
        assert await offer(SignIn(alice, "alice@acme.test", "/x?y=1")) == (
            "/.gatehold/account/password?rd=%2Fx%3Fy%3D1"
        )
        forgot = "/.gatehold/account/password?rd=%2Fx"
        assert await offer(SignIn(alice, "alice@acme.test", forgot)) == forgot
        await give_password(stack, "alice@acme.test")
        assert await offer(SignIn(alice, "alice@acme.test", "/x")) == "/x"


async def test_a_password_alone_does_not_open_an_account_with_a_second_factor(
    tmp_path: Path,
) -> None:
    from sqlalchemy import insert

    from gateway.store import tables

    async with running_stack(tmp_path, **password_settings()) as stack:
        user_id = await give_password(stack, "alice@acme.test")
        async with stack.app[ENGINE].begin() as conn:
            await conn.execute(
                insert(tables.totp_factors).values(
                    user_id=user_id,
                    secret="sealed",
                    created_at=time.time(),
                    confirmed_at=time.time(),
                )
            )
        answer = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD, rd="/api/invoices/7")
        assert answer.status == 303 and answer.headers["Location"] == "/.gatehold/login/verify"
        assert session_cookie(answer) is None
        assert "__Host-gatehold-pending=" in ",".join(answer.headers.getall("Set-Cookie"))
        [first] = await stack.events("login-first-factor")
        assert first["method"] == "password" and first["data"]["next"] == "verify"
