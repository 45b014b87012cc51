"""Sign-ins waiting for their second factor: live minutes, few tries, used once."""

from __future__ import annotations

import asyncio

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import pending_sign_ins as pending
from gateway.store import tables
from gateway.store.engine import writing
from gateway.store.factors import Factors, factors_of
from gateway.store.users import add_user

NOW = 1_800_000_000.0


async def _start(engine: AsyncEngine, user_id: int, *, ttl: float = 600.0) -> str:
    return await pending.create_pending(
        engine,
        user_id=user_id,
        method="password",
        purpose=pending.SIGN_IN,
        rd="/invoices",
        details={"auth_time": NOW},
        now=NOW,
        ttl=ttl,
    )


async def test_a_pending_sign_in_is_found_by_its_token_and_keeps_what_it_was_given(
    engine: AsyncEngine,
) -> None:
    user = await add_user(engine, "ann@acme.test", memberships=[])
    token = await _start(engine, user)
    found = await pending.get_pending(engine, token, NOW + 1)
    assert found is not None
    assert (found.user_id, found.method, found.purpose, found.rd) == (
        user,
        "password",
        "sign-in",
        "/invoices",
    )
    assert found.details == {"auth_time": NOW} and found.attempts == 0
    assert await pending.get_pending(engine, token + "x", NOW + 1) is None
    assert await pending.get_pending(engine, token, NOW + 601) is None  # expired


async def test_only_one_of_many_concurrent_finishers_gets_a_pending_sign_in(
    engine: AsyncEngine,
) -> None:
    user = await add_user(engine, "bo@acme.test", memberships=[])
    found = await pending.get_pending(engine, await _start(engine, user), NOW)
    assert found is not None
    won = await asyncio.gather(
        *(pending.consume_pending(engine, found.id_hash, NOW + 1) for _ in range(5))
    )
    assert sorted(won) == [False, False, False, False, True]


async def test_wrong_codes_use_up_a_pending_sign_in(engine: AsyncEngine) -> None:
    user = await add_user(engine, "cy@acme.test", memberships=[])
    token = await _start(engine, user)
    found = await pending.get_pending(engine, token, NOW)
    assert found is not None
    alive = [await pending.note_failure(engine, found.id_hash, max_attempts=3) for _ in range(3)]
    assert alive == [True, True, False]
    assert await pending.get_pending(engine, token, NOW) is None
    assert not await pending.consume_pending(engine, found.id_hash, NOW)


async def test_an_expired_pending_sign_in_cannot_be_consumed_and_is_swept(
    engine: AsyncEngine,
) -> None:
    user = await add_user(engine, "di@acme.test", memberships=[])
    old = await pending.get_pending(engine, await _start(engine, user, ttl=10), NOW)
    assert old is not None
    assert not await pending.consume_pending(engine, old.id_hash, NOW + 11)
    await pending.create_pending(
        engine,
        user_id=user,
        method="oidc",
        purpose=pending.STEP_UP,
        rd="/",
        details={},
        now=NOW + 11,
        ttl=600,
    )
    assert await pending.drop_pending_of(engine, user) == 1  # the expired one was swept


async def test_factors_count_only_confirmed_authenticators_and_unused_codes(
    engine: AsyncEngine,
) -> None:
    user = await add_user(engine, "ed@acme.test", memberships=[])
    assert await factors_of(engine, user) == Factors()
    async with writing(engine) as conn:
        await conn.execute(insert(tables.passwords).values(user_id=user, hash="x", set_at=NOW))
        await conn.execute(
            insert(tables.totp_factors).values(user_id=user, secret="s", created_at=NOW)
        )
        await conn.execute(
            insert(tables.recovery_codes),
            [
                {"user_id": user, "code_hash": "a" * 64, "created_at": NOW, "used_at": None},
                {"user_id": user, "code_hash": "b" * 64, "created_at": NOW, "used_at": NOW},
            ],
        )
    factors = await factors_of(engine, user)
    assert factors == Factors(password=True, totp=False, recovery_codes_left=1, passkeys=0)
    assert not factors.second_factor  # an unconfirmed authenticator is not a factor yet
    async with writing(engine) as conn:
        await conn.execute(
            insert(tables.passkeys).values(
                user_id=user, credential_id="cred", public_key=b"k", created_at=NOW
            )
        )
    assert (await factors_of(engine, user)).second_factor
