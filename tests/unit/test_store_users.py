"""Users and memberships in the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import Membership
from gateway.store import users
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate

ACME_STANDARD = Membership("acme", "standard")
GLOBEX_ADMIN = Membership("globex", "admin")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


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
