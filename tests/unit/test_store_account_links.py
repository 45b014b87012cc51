"""Creating people and tying provider accounts to them never takes over someone else,
on both backends (SQLite, and PostgreSQL on the server GATEHOLD_TEST_PG_DSN names)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import Membership
from gateway.store import external_accounts, sso_invites, users
from tests.support.store_backends import StoreUnderTest

ADMIN = Membership("acme", "admin")
READ = Membership("acme", "readonly")


async def test_creating_a_person_never_returns_an_existing_one(engine: AsyncEngine) -> None:
    admin = await users.add_user(engine, "admin@example.test", memberships=[ADMIN])
    assert await users.create_user(engine, "ADMIN@example.test", memberships=[READ]) is None
    held = await users.get_user(engine, admin)
    assert held is not None and held.memberships == (ADMIN,)
    created = await users.create_user(engine, "new@example.test", memberships=[READ])
    assert created is not None and created != admin


async def test_an_account_stays_with_the_first_person_it_was_tied_to(engine: AsyncEngine) -> None:
    first = await users.add_user(engine, "a@example.test", memberships=[READ])
    second = await users.add_user(engine, "b@example.test", memberships=[READ])
    tie = {"issuer": "https://idp.test", "subject": "s1", "provider": "corp", "now": 1.0}
    assert await external_accounts.link_account(engine, user_id=first, **tie)
    assert not await external_accounts.link_account(engine, user_id=second, **tie)
    assert await external_accounts.link_account(engine, user_id=first, **tie)  # idempotent
    account = await external_accounts.find_account(engine, "https://idp.test", "s1")
    assert account is not None and account.user_id == first
    assert [a.subject for a in await external_accounts.accounts_of(engine, first)] == ["s1"]
    assert await external_accounts.accounts_of(engine, second) == []


async def test_an_invite_is_used_once_before_it_expires(engine: AsyncEngine) -> None:
    user = await users.add_user(engine, "a@example.test", memberships=[READ])
    invite = {"email": "a@example.test", "provider": "corp", "user_id": user}
    await sso_invites.invite(engine, **invite, ttl=100.0, now=1000.0)
    used = {"email": "a@example.test", "now": 1050.0}
    assert await sso_invites.consume(engine, provider="other", **used) is None
    assert await sso_invites.consume(engine, provider="corp", **used) == user
    assert await sso_invites.consume(engine, provider="corp", **used) is None  # used up
    await sso_invites.invite(engine, **invite, ttl=100.0, now=2000.0)  # renewed
    assert await sso_invites.pending_for(engine, "a@example.test", 2050.0) == ["corp"]
    late = {"email": "a@example.test", "now": 2101.0}
    assert await sso_invites.consume(engine, provider="corp", **late) is None  # expired


async def test_first_sign_ins_racing_on_two_replicas_make_one_person_and_one_tie(
    engine: AsyncEngine, store_under_test: StoreUnderTest
) -> None:
    """Two engines, as two replicas have: the duplicate-ignoring inserts let exactly one
    of them create the person and tie the provider account."""
    other = store_under_test.open_engine()
    try:
        created = await asyncio.gather(
            *(users.create_user(e, "new@example.test", memberships=[READ]) for e in (engine, other))
        )
        people = [
            await users.add_user(engine, f"p{n}@example.test", memberships=[]) for n in (1, 2)
        ]
        tied = await asyncio.gather(
            *(
                external_accounts.link_account(
                    e, issuer="https://idp.test", subject="s-1", user_id=p, provider="idp", now=1.0
                )
                for e, p in zip((engine, other), people, strict=True)
            )
        )
    finally:
        await other.dispose()
    assert sum(user_id is not None for user_id in created) == 1
    assert sorted(tied) == [False, True]
