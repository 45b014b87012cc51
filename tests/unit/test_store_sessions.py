"""Server-side sessions (I7): random 256-bit ids, stored only as hashes, timeouts, revocation."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.sessions import SessionManager
from gateway.errors import StoreUnavailable
from gateway.model import AuthMethod, Membership
from gateway.store import sessions, users
from gateway.store.engine import open_engine

NOW = 1_800_000_000.0
IDLE = 30 * 60.0
ABSOLUTE = 12 * 3600.0


@pytest.fixture
async def alice(engine: AsyncEngine) -> int:
    return await users.add_user(
        engine, "alice@acme.test", memberships=[Membership("acme", "standard")]
    )


async def new_session(engine: AsyncEngine, user_id: int, *, now: float = NOW) -> tuple[str, str]:
    return await sessions.create_session(
        engine,
        user_id=user_id,
        auth_method="magic-link",
        auth_time=now,
        idle_timeout=IDLE,
        absolute_timeout=ABSOLUTE,
        client_ip="203.0.113.9",
        user_agent="Firefox",
        now=now,
    )


async def test_the_token_is_256_random_bits_and_only_its_hash_is_stored(
    engine: AsyncEngine, alice: int
) -> None:
    token, id_hash = await new_session(engine, alice)

    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert id_hash == hashlib.sha256(token.encode()).hexdigest()
    async with engine.connect() as conn:
        dump = "\n".join(str(row) for row in await conn.execute(text("SELECT * FROM sessions")))
    assert id_hash in dump
    assert token not in dump


async def test_every_session_gets_a_new_token(engine: AsyncEngine, alice: int) -> None:
    tokens = {(await new_session(engine, alice))[0] for _ in range(20)}
    assert len(tokens) == 20


async def test_a_stored_session_reads_back(engine: AsyncEngine, alice: int) -> None:
    _, id_hash = await new_session(engine, alice)
    row = await sessions.get_session(engine, id_hash)

    assert row is not None
    assert (row.user_id, row.auth_method, row.client_ip, row.user_agent) == (
        alice,
        "magic-link",
        "203.0.113.9",
        "Firefox",
    )
    assert (row.last_seen, row.absolute_expiry, row.revoked_at) == (NOW, NOW + ABSOLUTE, None)
    assert await sessions.get_session(engine, "0" * 64) is None


@pytest.mark.parametrize(
    ("last_seen", "now", "revoked", "live"),
    [
        (NOW, NOW + IDLE, None, True),
        (NOW, NOW + IDLE + 1, None, False),
        (NOW + ABSOLUTE - 1, NOW + ABSOLUTE, None, True),
        (NOW + ABSOLUTE - 1, NOW + ABSOLUTE + 1, None, False),
        (NOW, NOW + 1, NOW + 1, False),
    ],
    ids=[
        "a session used within its idle timeout is live",
        "a session idle one second too long has ended",
        "a busy session is live up to its absolute expiry",
        "a busy session ends at its absolute expiry",
        "a revoked session has ended at once",
    ],
)
def test_session_is_live(last_seen: float, now: float, revoked: float | None, live: bool) -> None:
    row = sessions.SessionRow(
        id_hash="0" * 64,
        user_id=1,
        created_at=NOW,
        last_seen=last_seen,
        auth_time=NOW,
        auth_method="oidc",
        idle_timeout=IDLE,
        absolute_expiry=NOW + ABSOLUTE,
        active_tenant=None,
        client_ip="",
        user_agent="",
        revoked_at=revoked,
    )
    assert sessions.session_is_live(row, now) is live


async def test_touching_a_session_restarts_its_idle_timeout(
    engine: AsyncEngine, alice: int
) -> None:
    _, id_hash = await new_session(engine, alice)
    await sessions.touch_session(engine, id_hash, NOW + IDLE - 1)

    row = await sessions.get_session(engine, id_hash)
    assert row is not None
    assert sessions.session_is_live(row, NOW + 2 * IDLE - 2)
    assert not sessions.session_is_live(row, NOW + 2 * IDLE)


async def test_a_revoked_session_is_not_revived_by_a_touch(engine: AsyncEngine, alice: int) -> None:
    _, id_hash = await new_session(engine, alice)
    assert await sessions.revoke_session(engine, id_hash, NOW + 1)
    assert not await sessions.revoke_session(engine, id_hash, NOW + 2)
    await sessions.touch_session(engine, id_hash, NOW + 3)

    row = await sessions.get_session(engine, id_hash)
    assert row is not None
    assert (row.revoked_at, row.last_seen) == (NOW + 1, NOW)
    assert not sessions.session_is_live(row, NOW + 3)


async def test_revoking_a_user_ends_all_their_sessions_and_no_one_elses(
    engine: AsyncEngine, alice: int
) -> None:
    bob = await users.add_user(engine, "bob@acme.test", memberships=[])
    alices = [(await new_session(engine, alice))[1] for _ in range(3)]
    _, bobs = await new_session(engine, bob)

    assert await sessions.revoke_user_sessions(engine, alice, NOW + 5) == 3
    assert await sessions.revoke_user_sessions(engine, alice, NOW + 6) == 0
    for id_hash in alices:
        row = await sessions.get_session(engine, id_hash)
        assert row is not None and row.revoked_at == NOW + 5
    assert await sessions.list_user_sessions(engine, alice) == []
    assert len(await sessions.list_user_sessions(engine, alice, include_revoked=True)) == 3
    assert [s.id_hash for s in await sessions.list_user_sessions(engine, bob)] == [bobs]


async def test_a_new_password_ends_every_session_of_the_person_but_the_one_that_set_it(
    engine: AsyncEngine, alice: int
) -> None:
    manager = SessionManager(engine, idle_timeout=IDLE, absolute_timeout=ABSOLUTE)
    tokens = []
    for _ in range(3):
        token, _ = await manager.create(
            user_id=alice, auth_method=AuthMethod.PASSWORD, client_ip="192.0.2.1", user_agent="t"
        )
        assert await manager.principal(token) is not None  # now cached
        tokens.append(token)
    kept = hashlib.sha256(tokens[0].encode()).hexdigest()
    assert await manager.revoke_user_except(alice, kept) == 2
    assert await manager.principal(tokens[0]) is not None
    assert [await manager.principal(t) for t in tokens[1:]] == [None, None]
    assert [s.id_hash for s in await sessions.list_user_sessions(engine, alice)] == [kept]


async def test_switching_the_active_tenant(engine: AsyncEngine, alice: int) -> None:
    _, id_hash = await new_session(engine, alice)
    assert await sessions.set_active_tenant(engine, id_hash, "globex")
    row = await sessions.get_session(engine, id_hash)
    assert row is not None and row.active_tenant == "globex"


async def test_ended_sessions_are_purged(engine: AsyncEngine, alice: int) -> None:
    _, old = await new_session(engine, alice, now=NOW - 2 * ABSOLUTE)
    _, current = await new_session(engine, alice)

    assert await sessions.delete_ended_sessions(engine, NOW) == 1
    assert await sessions.get_session(engine, old) is None
    assert await sessions.get_session(engine, current) is not None


async def test_an_unreachable_store_raises_store_unavailable(tmp_path: Path) -> None:
    """SQLite only: a file in a missing folder (PostgreSQL's outage is in the readiness
    tests, which stop a real server)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'gone' / 'gatehold.db'}")
    try:
        with pytest.raises(StoreUnavailable):
            await sessions.get_session(engine, "0" * 64)
        with pytest.raises(StoreUnavailable):
            await new_session(engine, 1)
    finally:
        await engine.dispose()


async def test_the_cache_miss_query_returns_session_user_and_memberships_in_order(
    engine: AsyncEngine,
) -> None:
    multi = await users.add_user(
        engine,
        "mo@example.test",
        memberships=[Membership("globex", "readonly"), Membership("acme", "admin")],
        superadmin=True,
    )
    nobody = await users.add_user(engine, "nobody@example.test", memberships=[])
    for user_id in (multi, nobody):
        _, id_hash = await new_session(engine, user_id)
        found = await sessions.get_session_and_user(engine, id_hash)
        assert found is not None
        assert found == (
            await sessions.get_session(engine, id_hash),
            await users.get_user(engine, user_id),
        )
    joined = await sessions.get_session_and_user(engine, (await new_session(engine, multi))[1])
    assert joined is not None
    assert joined[1].memberships == (Membership("globex", "readonly"), Membership("acme", "admin"))
    assert await sessions.get_session_and_user(engine, "0" * 64) is None


async def test_activity_is_written_in_batches_off_the_request_path(
    engine: AsyncEngine, alice: int
) -> None:
    clock = [NOW]
    manager = SessionManager(
        engine, idle_timeout=IDLE, absolute_timeout=ABSOLUTE, touch_every=60, clock=lambda: clock[0]
    )
    token, id_hash = await manager.create(
        user_id=alice, auth_method=AuthMethod.MAGIC_LINK, client_ip="", user_agent=""
    )
    await manager.start(poll_seconds=0.05)
    try:
        clock[0] = NOW + 61
        assert await manager.principal(token) is not None
        row = await sessions.get_session(engine, id_hash)
        assert row is not None and row.last_seen == NOW  # not written by the request itself
        for _ in range(40):
            row = await sessions.get_session(engine, id_hash)
            if row is not None and row.last_seen == NOW + 61:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.last_seen == NOW + 61
    finally:
        await manager.close()
