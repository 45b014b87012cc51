"""Users and memberships in the store."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import Membership
from gateway.store import sessions, users

ACME_STANDARD = Membership("acme", "standard")
GLOBEX_ADMIN = Membership("globex", "admin")


async def test_a_new_user_reads_back_with_memberships_in_grant_order(engine: AsyncEngine) -> None:
    grants = [Membership("zeta", "readonly"), ACME_STANDARD, Membership("*", "auditor")]
    user_id = await users.add_user(
        engine, "Alice@ACME.test", memberships=grants, display_name="Alice"
    )

    user = await users.get_user(engine, user_id)
    assert user is not None
    assert (user.email, user.display_name, user.superadmin, user.active) == (
        "alice@acme.test",
        "Alice",
        False,
        True,
    )
    assert user.memberships == tuple(grants)
    assert await users.get_user_by_email(engine, "ALICE@acme.TEST") == user


async def test_adding_an_existing_user_adds_memberships_idempotently(engine: AsyncEngine) -> None:
    first = await users.add_user(engine, "alice@acme.test", memberships=[ACME_STANDARD])
    again = await users.add_user(
        engine, "ALICE@acme.test", memberships=[ACME_STANDARD, GLOBEX_ADMIN], superadmin=True
    )
    user = await users.get_user(engine, first)

    assert again == first
    assert user is not None
    assert user.memberships == (ACME_STANDARD, GLOBEX_ADMIN)
    assert user.superadmin


async def test_unknown_users_are_none(engine: AsyncEngine) -> None:
    assert await users.get_user(engine, 42) is None
    assert await users.get_user_by_email(engine, "nobody@acme.test") is None


async def test_list_users_is_ordered_by_email(engine: AsyncEngine) -> None:
    await users.add_user(engine, "carol@acme.test", memberships=[GLOBEX_ADMIN])
    await users.add_user(engine, "bob@acme.test", memberships=[ACME_STANDARD])

    listed = await users.list_users(engine)
    assert [(u.email, u.memberships) for u in listed] == [
        ("bob@acme.test", (ACME_STANDARD,)),
        ("carol@acme.test", (GLOBEX_ADMIN,)),
    ]


async def test_deactivating_and_reactivating(engine: AsyncEngine) -> None:
    user_id = await users.add_user(engine, "alice@acme.test", memberships=[])
    assert await users.set_active(engine, user_id, False)
    user = await users.get_user(engine, user_id)
    assert user is not None and not user.active
    assert await users.set_active(engine, user_id, True)
    assert not await users.set_active(engine, 999, False)


async def test_removing_a_membership(engine: AsyncEngine) -> None:
    user_id = await users.add_user(
        engine, "alice@acme.test", memberships=[ACME_STANDARD, GLOBEX_ADMIN]
    )

    assert await users.remove_membership(engine, user_id, ACME_STANDARD)
    assert not await users.remove_membership(engine, user_id, ACME_STANDARD)
    user = await users.get_user(engine, user_id)
    assert user is not None and user.memberships == (GLOBEX_ADMIN,)


async def test_the_schema_refuses_a_mixed_case_email(engine: AsyncEngine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (email, created_at) VALUES ('Alice@acme.test', 0)")
            )


async def sign_in(engine: AsyncEngine, user_id: int, now: float, *, signs_in: bool) -> None:
    await sessions.create_session(
        engine,
        user_id=user_id,
        auth_method="magic-link" if signs_in else "cli-mint",
        auth_time=now,
        idle_timeout=3600,
        absolute_timeout=86400,
        client_ip="127.0.0.1",
        user_agent="tests",
        now=now,
        signs_in=signs_in,
    )


async def test_an_invited_person_is_invited_until_their_first_sign_in(engine: AsyncEngine) -> None:
    user_id = await users.add_user(engine, "dora@acme.test", memberships=[ACME_STANDARD])
    before = await users.get_user(engine, user_id)
    assert before is not None and before.state == "active" and before.invited_at is None

    assert await users.mark_invited(engine, user_id, by="carol@acme.test", now=100.0)
    invited = await users.get_user(engine, user_id)
    assert invited is not None and invited.state == "invited"
    assert (invited.invited_at, invited.invited_by) == (100.0, "carol@acme.test")

    await sign_in(engine, user_id, 200.0, signs_in=False)
    minted = await users.get_user(engine, user_id)
    assert minted is not None and minted.state == "invited", "a minted session signs nobody in"

    await sign_in(engine, user_id, 300.0, signs_in=True)
    await sign_in(engine, user_id, 400.0, signs_in=True)
    active = await users.get_user(engine, user_id)
    assert active is not None and active.state == "active"
    assert (active.first_login_at, active.last_login_at) == (300.0, 400.0)

    assert not await users.mark_invited(engine, user_id, by="cli", now=500.0)
    again = await users.get_user(engine, user_id)
    assert again is not None and again.state == "active" and again.invited_at == 100.0

    await users.set_active(engine, user_id, False)
    off = await users.get_user(engine, user_id)
    assert off is not None and off.state == "deactivated"


async def test_the_list_shows_last_activity_from_sign_ins_and_sessions(
    engine: AsyncEngine,
) -> None:
    quiet = await users.add_user(engine, "quiet@acme.test", memberships=[ACME_STANDARD])
    busy = await users.add_user(engine, "busy@acme.test", memberships=[ACME_STANDARD])
    await sign_in(engine, busy, 1000.0, signs_in=True)
    (session,) = await sessions.list_user_sessions(engine, busy)
    await sessions.touch_sessions(engine, {session.id_hash: 1500.0})

    listed = {user.id: user for user in await users.list_users(engine)}
    assert listed[quiet].last_active is None
    assert listed[busy].last_active == 1500.0
    assert listed[busy].last_login_at == 1000.0
