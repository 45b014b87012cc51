"""API keys note their last use: off the request's path, at most once a minute per key."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.api_clients import ApiKeys
from gateway.store import api_keys as key_store
from tests.support.waiting import until


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def count_use_writes(engine: AsyncEngine) -> list[int]:
    """A one-element list counting the rows each ``last_used_at`` write was asked to set."""
    writes = [0]

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "last_used_at" in statement:
            writes[0] += len(params) if many else 1

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return writes


async def used_at(engine: AsyncEngine, key_id: int) -> float | None:
    row = await key_store.get_key(engine, key_id)
    assert row is not None
    return row.last_used_at


async def written(engine: AsyncEngine, key_id: int, when: float) -> None:
    """Until the poll has written ``when`` as the key's last use."""

    async def done() -> bool:
        return await used_at(engine, key_id) == when

    await until(done, f"the key's use at {when} is written")


async def test_uses_are_written_once_a_minute_per_key(engine: AsyncEngine) -> None:
    clock = Clock()
    keys = ApiKeys(engine, clock=clock, cache_seconds=3600)
    key_id, key = await key_store.create_key(
        engine, tenant="acme", role="readonly", label="erp", ttl=86400, now=clock.now
    )
    writes = count_use_writes(engine)
    await keys.start(poll_seconds=0.01)
    try:
        for _ in range(50):
            assert await keys.principal(key) is not None
        await written(engine, key_id, clock.now)
        assert writes == [1], "fifty requests within a minute: one write"

        clock.now += 59
        assert await keys.principal(key) is not None
        await asyncio.sleep(0.1)  # ten polls, which must not write it
        assert writes == [1] and await used_at(engine, key_id) == clock.now - 59

        clock.now += 2
        assert await keys.principal(key) is not None
        await written(engine, key_id, clock.now)
        assert writes == [2]
    finally:
        await keys.close()


async def test_another_process_within_the_minute_does_not_write_the_use_again(
    engine: AsyncEngine,
) -> None:
    clock = Clock()
    key_id, key = await key_store.create_key(
        engine, tenant="acme", role="readonly", label="erp", ttl=86400, now=clock.now
    )
    first, second = ApiKeys(engine, clock=clock), ApiKeys(engine, clock=clock)
    assert await first.principal(key) is not None
    await first.close()  # closing writes what was noted
    clock.now += 30
    assert await second.principal(key) is not None
    await second.close()
    assert await used_at(engine, key_id) == clock.now - 30


async def test_unknown_and_revoked_keys_note_nothing(engine: AsyncEngine) -> None:
    clock = Clock()
    keys = ApiKeys(engine, clock=clock)
    key_id, key = await key_store.create_key(
        engine, tenant="acme", role="readonly", label="erp", ttl=86400, now=clock.now
    )
    await key_store.revoke_key(engine, key_id, clock.now)
    writes = count_use_writes(engine)
    assert await keys.principal(key) is None
    assert await keys.principal("ghk_" + "x" * 43) is None
    await keys.close()
    assert writes == [0] and await used_at(engine, key_id) is None
