"""Registry changes reach every process's owner cache: recorded, notified, polled, evicted.

``RegistryFollower`` on a real store (SQLite: the poll; PostgreSQL: the notification,
with a fallback poll too slow to pass the test), and ``Ownership`` evicting what it is
told, including while a lookup that read the registry before the change is under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import ObjectRef, Owned, Rejection
from gateway.registry_sync import SETTLE_SECONDS, RegistryFollower
from gateway.store import registry as registry_store
from gateway.store import tables
from gateway.store.engine import open_engine, writing
from gateway.store.migrate import migrate
from gateway.store.notify import ChangeFeed
from gateway.store.registry import OwnerRow
from tests.support.postgres import fresh_pg_engine
from tests.unit.test_ownership import MemoryRegistry, ownership

Evicted = list[tuple[str, str | None]]


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def following(engine: AsyncEngine, evicted: Evicted) -> AsyncIterator[RegistryFollower]:
    feed = ChangeFeed(engine)
    follower = RegistryFollower(
        engine, feed, lambda kind, oid: evicted.append((kind, oid)), notified_poll_seconds=30
    )
    await feed.start()
    await follower.start()
    try:
        yield follower
    finally:
        await follower.close()
        await feed.close()


async def until(check: Callable[[], bool], within: float) -> None:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < within, "not within the time allowed"
        await asyncio.sleep(0.01)


async def test_every_write_is_evicted_by_the_poll_once(sqlite: AsyncEngine) -> None:
    await registry_store.set_owner(sqlite, "report", "before-start", "acme")
    evicted: Evicted = []
    async with following(sqlite, evicted) as follower:
        assert evicted == []  # changes before the start: nothing was cached then
        # An owner learned on create (never replacing one) is a change like any other.
        assert await registry_store.set_owner(sqlite, "report", "r-1", "acme", replace=False)
        await until(lambda: evicted == [("report", "r-1")], within=1.0)
        # Learning an owner that exists already changes nothing: nothing to evict.
        assert not await registry_store.set_owner(sqlite, "report", "r-1", "x", replace=False)
        await registry_store.remove_owner(sqlite, "report", "r-1")
        await until(lambda: evicted[-1:] == [("report", "r-1")] and len(evicted) == 2, 1.0)
        many = [OwnerRow("report", f"r-{n}", "acme") for n in range(registry_store.BULK + 1)]
        await registry_store.set_owners(sqlite, many)
        await until(lambda: evicted[-1:] == [("report", None)], within=1.0)
        assert await follower.catch_up() == 0  # each change is evicted once
    assert len(evicted) == 3


async def test_a_change_committed_out_of_order_is_waited_for_a_while(
    sqlite: AsyncEngine,
) -> None:
    """PostgreSQL may commit seq 2 after seq 3 was read: the cursor stays below the gap
    until it fills, or until it has waited long enough to count as a rolled-back write."""
    now = [0.0]
    evicted: Evicted = []
    follower = RegistryFollower(
        sqlite, ChangeFeed(sqlite), lambda kind, oid: evicted.append((kind, oid)),
        clock=lambda: now[0],
    )  # fmt: skip
    assert await follower.catch_up() == 0  # the starting point: no change yet

    async def committed(seq: int, oid: str) -> None:
        async with writing(sqlite) as conn:
            await conn.execute(
                insert(tables.registry_changes).values(
                    seq=seq, resource_type="report", object_id=oid, changed_at=time.time()
                )
            )

    await committed(3, "three")
    assert await follower.catch_up() == 1
    await committed(2, "two")  # began before three, committed after it was read
    assert await follower.catch_up() == 1
    assert evicted == [("report", "three"), ("report", "two")]
    await committed(6, "six")  # 4 and 5: rolled back, never to come
    assert await follower.catch_up() == 1
    now[0] = SETTLE_SECONDS + 1
    assert await follower.catch_up() == 0
    await committed(7, "seven")
    assert await follower.catch_up() == 1
    assert evicted[-2:] == [("report", "six"), ("report", "seven")]  # each once


async def test_on_postgresql_the_notification_evicts_at_once() -> None:
    async with fresh_pg_engine("registry") as engine:
        evicted: Evicted = []
        async with following(engine, evicted):
            assert await registry_store.set_owner(engine, "report", "r-1", "acme", replace=False)
            await until(lambda: ("report", "r-1") in evicted, within=0.5)
            assert not await registry_store.set_owner(engine, "report", "r-1", "x", replace=False)
            await registry_store.set_owner(engine, "report", "x" * 8000, "acme")
            await until(lambda: ("report", None) in evicted, within=0.5)  # too long: the type


class ReadThenWait(MemoryRegistry):
    """Reads the owner, then takes ``delay`` to answer: the answer may be stale by then."""

    async def get_owner(self, resource_type: str, object_id: str) -> str | None:
        self.reads += 1
        owner = self.owners.get((resource_type, object_id))
        await asyncio.sleep(self.delay)
        return owner


async def test_a_lookup_under_way_during_an_eviction_is_not_cached() -> None:
    registry = ReadThenWait({("report", "r-1"): "acme"}, delay=0.2)
    owners = ownership(registry)
    ref = [ObjectRef("report", "r-1", "path")]
    lookup = asyncio.create_task(owners.resolve(ref, upstream="app"))
    await until(lambda: registry.reads == 1, within=5.0)  # it has read the old owner
    registry.owners[("report", "r-1")] = "globex"
    owners.invalidate("report", "r-1")
    first = await lookup
    assert not isinstance(first, Rejection)
    assert [r.answer for r in first] == [Owned("acme")]  # read before the change
    second = await owners.resolve(ref, upstream="app")
    assert not isinstance(second, Rejection)
    assert [r.answer for r in second] == [Owned("globex")]  # not the stale answer, cached
    assert registry.reads == 2


async def test_evicting_a_whole_type_forgets_each_of_its_owners() -> None:
    registry = MemoryRegistry({("report", "a"): "acme", ("report", "b"): "acme"})
    owners = ownership(registry)
    both = [ObjectRef("report", oid, "path") for oid in ("a", "b")]
    await owners.resolve(both, upstream="app")
    await owners.resolve(both, upstream="app")
    assert registry.reads == 2
    owners.invalidate("report")
    await owners.resolve(both, upstream="app")
    assert registry.reads == 4
