"""A password sign-in tells an attacker nothing and never opens a deactivated account (I9).

An unknown address, a wrong password and the right password of a deactivated account
get byte-for-byte the same page and status (timing: ``tests/integration/test_passwords``).
None of them sets a cookie, stores a session, or reaches Ledger; the audit keeps the
real reason for the operator.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from gateway.app import ENGINE
from gateway.store import tables
from gateway.store import users as user_store
from tests.support.passwords import (
    ALICE_PASSWORD,
    give_password,
    password_settings,
    sign_in,
    user_id_of,
)
from tests.support.stack import Stack, running_stack

DORA = "dora@acme.test"
DORA_PASSWORD = "dora's right password, long"


async def session_rows(stack: Stack) -> int:
    async with stack.app[ENGINE].connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(tables.sessions))).scalar_one()
        )


async def test_unknown_wrong_and_deactivated_cannot_be_told_apart(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        engine = stack.app[ENGINE]
        await give_password(stack, "alice@acme.test")
        await user_store.add_user(engine, DORA, memberships=[])
        await give_password(stack, DORA, DORA_PASSWORD)
        await user_store.set_active(engine, await user_id_of(stack, DORA), False)
        sessions, reached = await session_rows(stack), await stack.ledger_total()
        answers = {}
        for kind, email, password in (
            ("unknown", "nobody@acme.test", ALICE_PASSWORD),
            ("wrong", "alice@acme.test", "a guess that is wrong"),
            ("deactivated", DORA, DORA_PASSWORD),
        ):
            answer = await sign_in(stack, email, password, rd="/api/invoices/7")
            answers[kind] = (
                answer.status,
                (await answer.text()).replace(email, "EMAIL"),
                answer.headers.getall("Set-Cookie", []),
                answer.headers.get("Location"),
            )
        assert answers["unknown"] == answers["wrong"] == answers["deactivated"]
        status, body, cookies, location = answers["unknown"]
        assert status == 400 and "That email and password do not match." in body
        assert cookies == [] and location is None, "no session, no pending sign-in"
        assert await session_rows(stack) == sessions
        assert await stack.ledger_total() == reached
        failed = {e["actor"]: e["reason"] for e in await stack.events("login-failed")}
        assert failed == {
            "nobody@acme.test": "unknown-user",
            "alice@acme.test": "wrong-password",
            DORA: "user-inactive",
        }
        assert not [e for e in await stack.events("login") if e["actor"] == DORA]


async def test_deactivating_an_account_ends_password_sign_in_even_with_the_right_password(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        user_id = await give_password(stack, "alice@acme.test")
        assert (await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)).status == 303
        await user_store.set_active(stack.app[ENGINE], user_id, False)
        refused = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD)
        assert refused.status == 400 and refused.headers.getall("Set-Cookie", []) == []
