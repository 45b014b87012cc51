"""Rules versions in the store: immutable rows, one active version, changed atomically."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import rule_versions as store
from tests.support.store_backends import StoreUnderTest


async def test_a_new_store_has_no_active_version(engine: AsyncEngine) -> None:
    assert await store.active_id(engine) is None
    assert await store.active_version(engine) is None
    assert await store.list_versions(engine) == []


async def test_versions_are_kept_with_author_time_comment_and_hash(engine: AsyncEngine) -> None:
    first = await store.add_version(engine, "a: 1\n", author="root@x.test", comment="one", now=5.0)
    second = await store.add_version(engine, "a: 2\n", author="file", comment="", now=6.0)
    assert first.source_hash == store.source_hash("a: 1\n") and len(first.source_hash) == 64
    assert (first.author, first.comment, first.created_at, first.activated_at) == (
        "root@x.test",
        "one",
        5.0,
        None,
    )
    assert await store.get_version(engine, first.id) == first
    assert await store.get_version(engine, 999) is None
    assert [v.id for v in await store.list_versions(engine)] == [second.id, first.id]


async def test_activating_names_the_previous_version(engine: AsyncEngine) -> None:
    one = await store.add_version(engine, "a: 1\n", author="a", comment="", now=1.0)
    two = await store.add_version(engine, "a: 2\n", author="a", comment="", now=2.0)
    first = await store.activate(engine, one.id, by="a", now=3.0)
    assert first is not None and first.previous is None and first.changed
    second = await store.activate(engine, two.id, by="a", now=4.0)
    assert second is not None and second.previous == one.id and second.version.activated_at == 4.0
    again = await store.activate(engine, two.id, by="a", now=5.0)
    assert again is not None and not again.changed
    assert await store.active_id(engine) == two.id
    assert await store.activate(engine, 42, by="a", now=6.0) is None
    assert await store.active_id(engine) == two.id


async def test_a_file_synced_by_many_processes_at_once_is_one_version(
    engine: AsyncEngine, store_under_test: StoreUnderTest
) -> None:
    others = [store_under_test.open_engine() for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(
                store.store_and_activate(e, "rules: x\n", author="file", comment="", now=1.0)
                for e in [engine, *others]
            )
        )
    finally:
        for other in others:
            await other.dispose()
    assert sum(r.changed for r in results) == 1
    assert len({r.version.id for r in results}) == 1
    assert len(await store.list_versions(engine)) == 1


async def test_seeding_happens_only_on_an_empty_store(engine: AsyncEngine) -> None:
    seeded = await store.seed(engine, "v: 1\n", author="file", comment="seed", now=1.0)
    assert seeded is not None and seeded.previous is None
    assert await store.seed(engine, "v: 2\n", author="file", comment="seed", now=2.0) is None
    assert await store.active_id(engine) == seeded.version.id
    assert len(await store.list_versions(engine)) == 1
