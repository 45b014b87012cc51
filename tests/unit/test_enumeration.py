"""The enumeration defence slows, then blocks, a principal guessing object ids.

The behaviour is the same whether a guard counts alone (no store) or in a store it
shares with other replicas (SQLite file, PostgreSQL database); the shared one counts
denials made through any replica together and blocks on all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.enumeration import NOTIFIED_POLL, EnumerationGuard, Verdict
from gateway.model import (
    AuthMethod,
    Decision,
    Membership,
    NotFound,
    ObjectRef,
    Principal,
    Reason,
    ResolvedRef,
)
from gateway.store.engine import open_engine
from gateway.store.notify import ChangeFeed
from gateway.store.rate_limits import SWEEP_SECONDS
from tests.support.shared_store import BACKENDS, two_replicas

ALICE = Principal("1", "alice@acme.test", (Membership("acme", "standard"),), AuthMethod.SESSION, 0)
BOB = Principal("2", "bob@globex.test", (Membership("globex", "standard"),), AuthMethod.SESSION, 0)
Pair = tuple[EnumerationGuard, EnumerationGuard]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def denial(object_id: str, reason: Reason = Reason.TENANT_FOREIGN) -> Decision:
    ref = ObjectRef("invoice", object_id, "path.invoice_id")
    return Decision(False, reason, objects=(ResolvedRef(ref, NotFound()),))


def guard(clock: Clock, engine: AsyncEngine | None = None) -> EnumerationGuard:
    return EnumerationGuard(
        window=60, slow_after=3, block_after=6, block_for=900, clock=clock, engine=engine
    )


@pytest.fixture(params=("in this process", *BACKENDS))
async def engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine | None, AsyncEngine | None]]:
    if request.param == "in this process":
        yield None, None
        return
    async with two_replicas(request.param, tmp_path) as pair:
        yield pair


@pytest.fixture(params=BACKENDS)
async def shared(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with two_replicas(request.param, tmp_path) as pair:
        yield pair


async def test_distinct_denials_slow_down_then_block_once(
    engines: tuple[AsyncEngine | None, AsyncEngine | None],
) -> None:
    clock = Clock()
    enumeration = guard(clock, engines[0])
    verdicts = [await enumeration.observe(ALICE, denial(str(i))) for i in range(1, 8)]
    assert [v.delay > 0 for v in verdicts[:5]] == [False, False, False, True, True]
    assert [v.newly_blocked for v in verdicts] == [False] * 5 + [True, False]
    assert enumeration.blocked(ALICE)
    assert not enumeration.blocked(BOB)


async def test_repeating_one_id_is_not_enumeration(
    engines: tuple[AsyncEngine | None, AsyncEngine | None],
) -> None:
    enumeration = guard(Clock(), engines[0])
    for _ in range(20):
        assert (await enumeration.observe(ALICE, denial("8"))).distinct_ids == 1
    assert not enumeration.blocked(ALICE)


async def test_other_denials_do_not_count(
    engines: tuple[AsyncEngine | None, AsyncEngine | None],
) -> None:
    enumeration = guard(Clock(), engines[0])
    for i in range(20):
        await enumeration.observe(ALICE, denial(str(i), Reason.ROLE_FORBIDDEN))
    assert not enumeration.blocked(ALICE)


async def test_denials_outside_the_window_are_forgotten_and_blocks_expire(
    engines: tuple[AsyncEngine | None, AsyncEngine | None],
) -> None:
    clock = Clock()
    enumeration = guard(clock, engines[0])
    for i in range(5):
        await enumeration.observe(ALICE, denial(str(i)))
        clock.now += 20
    assert not enumeration.blocked(ALICE), "spread over 100 s, only 3 fall in the window"
    for i in range(10, 16):
        await enumeration.observe(ALICE, denial(str(i)))
    assert enumeration.blocked(ALICE)
    clock.now += 901
    assert not enumeration.blocked(ALICE)


async def test_denials_through_two_replicas_count_together_and_block_on_both(
    shared: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = guard(clock, shared[0]), guard(clock, shared[1])
    verdicts = [await (a, b)[i % 2].observe(ALICE, denial(str(i))) for i in range(6)]
    assert [v.distinct_ids for v in verdicts] == [1, 2, 3, 4, 5, 6]
    assert [v.delay > 0 for v in verdicts[:5]] == [False, False, False, True, True]
    assert verdicts[-1].newly_blocked, "b's denial crossed the threshold"
    assert b.blocked(ALICE) and not a.blocked(ALICE), "a has not polled yet"
    await a.refresh()
    assert a.blocked(ALICE) and not a.blocked(BOB)
    clock.now += 901
    await a.refresh()
    assert not a.blocked(ALICE) and not b.blocked(ALICE)


async def test_replicas_racing_over_the_threshold_block_exactly_once(
    shared: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = guard(clock, shared[0]), guard(clock, shared[1])
    verdicts = await asyncio.gather(
        *((a, b)[i % 2].observe(ALICE, denial(str(i))) for i in range(20))
    )
    assert sum(v.newly_blocked for v in verdicts) == 1, "audited once, by one replica"
    assert sorted(v.distinct_ids for v in verdicts) == list(range(1, 21)), "each counted once"
    await a.refresh()
    await b.refresh()
    assert a.blocked(ALICE) and b.blocked(ALICE)


async def test_a_restarted_replica_learns_running_blocks_when_it_starts(
    shared: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a = guard(clock, shared[0])
    for i in range(6):
        await a.observe(ALICE, denial(str(i)))
    fresh = guard(clock, shared[1])
    await fresh.start(poll_seconds=0.05)
    try:
        for _ in range(100):
            if fresh.blocked(ALICE):
                break
            await asyncio.sleep(0.01)
        assert fresh.blocked(ALICE)
    finally:
        await fresh.close()


async def test_old_denials_and_ended_blocks_are_swept(
    shared: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a = guard(clock, shared[0])
    for i in range(10):
        await a.observe(ALICE, denial(str(i)))
    assert await rows(shared[1]) == (10, 1)
    clock.now += 900 + SWEEP_SECONDS
    await a.observe(BOB, denial("1"))
    assert await rows(shared[1]) == (1, 0), "only bob's new denial is left"


async def rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        hits = (await conn.execute(text("SELECT count(*) FROM rate_limit_hits"))).scalar_one()
        blocks = (await conn.execute(text("SELECT count(*) FROM enumeration_blocks"))).scalar_one()
    return int(hits), int(blocks)


async def test_without_the_store_a_replica_counts_alone(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the store's folder should be\n")
    engine = open_engine(f"sqlite:///{tmp_path / 'blocked' / 'gatehold.db'}")
    try:
        enumeration = guard(Clock(), engine)
        verdicts = [await enumeration.observe(ALICE, denial(str(i))) for i in range(6)]
    finally:
        await engine.dispose()
    assert [v.distinct_ids for v in verdicts] == [1, 2, 3, 4, 5, 6]
    assert verdicts[-1].newly_blocked and enumeration.blocked(ALICE)


async def test_blocked_and_allowed_traffic_never_touch_the_store(
    shared: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """The hot path: ``blocked`` is a dictionary lookup, an allowed decision records nothing."""
    engine = shared[0]
    clock = Clock()
    enumeration = guard(clock, engine)
    for i in range(6):
        await enumeration.observe(BOB, denial(str(i)))
    statements: list[str] = []
    event.listen(
        engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    allowed = Decision(True, Reason.ROLE_ALLOWED)
    started = time.perf_counter()
    for _ in range(10_000):
        assert not enumeration.blocked(ALICE)
        assert enumeration.blocked(BOB)
        assert await enumeration.observe(ALICE, allowed) == Verdict()
    per_call = (time.perf_counter() - started) / 10_000
    print(f"blocked() x2 + observe(allowed): {per_call * 1e6:.2f} µs per request")
    assert statements == []


async def test_on_postgresql_a_block_reaches_the_other_replica_by_notification(
    tmp_path: Path,
) -> None:
    """The other replica polls only every NOTIFIED_POLL seconds while it listens, so
    learning the block within a second shows the notification did it."""
    assert NOTIFIED_POLL >= 5
    async with two_replicas("postgresql", tmp_path) as (one, two):
        clock = Clock()
        a, b = guard(clock, one), guard(clock, two)
        feed = ChangeFeed(two)
        b.follow(feed)
        await feed.start()
        await b.start()
        try:
            assert feed.listening
            for i in range(6):
                await a.observe(ALICE, denial(str(i)))
            began = time.monotonic()
            while not b.blocked(ALICE):
                assert time.monotonic() - began < 1.0, "not within a second"
                await asyncio.sleep(0.01)
            assert not b.blocked(BOB)
        finally:
            await b.close()
            await feed.close()
