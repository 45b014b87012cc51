"""Ownership: the id cap, learned owners, cache times, failures, single flight, bounds.

The registry here is a plain in-memory table implementing ``RegistryStore``; HTTP
lookups go to a real lookup server on a loopback port, SQL lookups to a real SQLite
file; the thing under test is ``Ownership`` (one resource behind two upstreams is
covered in ``tests/security/test_owner_cache_crosses_upstreams.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.model import (
    HttpOwner,
    NotFound,
    ObjectRef,
    Owned,
    Reason,
    RegistryOwner,
    Rejection,
    ResolverFailed,
    ResourceDef,
    SqlOwner,
    UpstreamDef,
)
from gateway.ownership import Ownership
from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream
from tests.support.servers_base import free_port
from tests.support.waiting import until


class MemoryRegistry:
    """Owners in a dict; counts reads and holds each read open for ``delay`` seconds."""

    def __init__(self, owners: dict[tuple[str, str], str], delay: float = 0.0) -> None:
        self.owners = dict(owners)
        self.reads = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = delay

    async def get_owner(self, resource_type: str, object_id: str) -> str | None:
        self.reads += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        return self.owners.get((resource_type, object_id))

    async def set_owner(self, resource_type: str, object_id: str, tenant: str) -> None:
        self.owners.setdefault((resource_type, object_id), tenant)


REPORT = ResourceDef("report", RegistryOwner(learn_on_create=True), cache_seconds=60)
NOTE = ResourceDef("note", RegistryOwner(learn_on_create=False))
UPSTREAMS = {"app": UpstreamDef("app", "http://127.0.0.1:9")}


def ownership(registry: MemoryRegistry, **limits: int) -> Ownership:
    return Ownership(
        resources={"report": REPORT, "note": NOTE},
        upstreams=UPSTREAMS,
        registry=registry,
        **limits,
    )


def refs(count: int) -> list[ObjectRef]:
    return [ObjectRef("report", f"r-{n}", "body:/ids/*") for n in range(count)]


async def test_over_the_cap_nothing_is_looked_up() -> None:
    registry = MemoryRegistry({})
    answer = await ownership(registry, max_ids=5).resolve(refs(6), upstream="app")
    assert isinstance(answer, Rejection) and answer.reason is Reason.IDS_TOO_MANY
    assert "6 objects; at most 5" in answer.detail
    assert registry.reads == 0


async def test_lookups_in_flight_never_exceed_the_bound() -> None:
    registry = MemoryRegistry({("report", f"r-{n}"): "acme" for n in range(30)}, delay=0.01)
    owners = ownership(registry, max_concurrent=3)
    answer = await owners.resolve(refs(30), upstream="app")
    assert not isinstance(answer, Rejection)
    assert all(r.answer == Owned("acme") for r in answer)
    assert registry.reads == 30
    assert registry.max_in_flight == 3


async def test_a_learned_owner_replaces_a_cached_not_found() -> None:
    registry = MemoryRegistry({})
    owners = ownership(registry)
    ref = ObjectRef("report", "r-new", "path.report_id")
    first = await owners.resolve([ref], upstream="app")
    assert not isinstance(first, Rejection) and first[0].answer == NotFound()
    assert await owners.learn_created(resource_type="report", object_id="r-new", tenant="acme")
    second = await owners.resolve([ref], upstream="app")
    assert not isinstance(second, Rejection) and second[0].answer == Owned("acme")


async def test_an_owned_id_is_never_re_learned() -> None:
    registry = MemoryRegistry({("report", "r-1"): "globex"})
    owners = ownership(registry)
    learned = await owners.learn_created(resource_type="report", object_id="r-1", tenant="acme")
    assert learned is False
    assert registry.owners[("report", "r-1")] == "globex"


async def test_a_resource_that_does_not_learn_is_never_taught() -> None:
    registry = MemoryRegistry({})
    owners = ownership(registry)
    assert not await owners.learn_created(resource_type="note", object_id="n-1", tenant="acme")
    assert registry.owners == {}


# --- What the module docstring promises: cache times, failures, single flight, bounds ---
#
# HTTP lookups go to a real lookup server on a loopback port (``scripted_upstream``),
# which counts every lookup it answers; time is an injected clock.


class Clock:
    """A clock the test moves by hand (``Ownership(clock=...)``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def http_resource(
    *, cache: float = 60.0, negative: float = 10.0, url: str = "{upstream}/internal/owners/{id}"
) -> ResourceDef:
    return ResourceDef(
        "invoice",
        HttpOwner("GET", url, "/tenant"),
        cache_seconds=cache,
        negative_cache_seconds=negative,
    )


@asynccontextmanager
async def http_ownership(
    lookups: Scripted, resource: ResourceDef, **options: Any
) -> AsyncIterator[Ownership]:
    owners = Ownership(
        resources={"invoice": resource},
        upstreams={"app": UpstreamDef("app", lookups.url)},
        registry=MemoryRegistry({}),
        **options,
    )
    await owners.start()
    try:
        yield owners
    finally:
        await owners.close()


async def answer_for(owners: Ownership, object_id: str, *, kind: str = "invoice") -> object:
    resolved = await owners.resolve([ObjectRef(kind, object_id, "path.id")], upstream="app")
    assert not isinstance(resolved, Rejection)
    return resolved[0].answer


async def test_a_found_owner_is_cached_for_the_positive_ttl_then_asked_again() -> None:
    clock = Clock()
    async with (
        scripted_upstream("records", owners={"5": "acme"}) as lookups,
        http_ownership(lookups, http_resource(cache=60, negative=5), clock=clock) as owners,
    ):
        assert await answer_for(owners, "5") == Owned("acme")
        clock.now += 59.9
        lookups.owners["5"] = "globex"  # the system of record changed; the cache still holds
        assert await answer_for(owners, "5") == Owned("acme")
        assert lookups.lookups == ["5"]
        clock.now += 0.2  # past 60 s: asked again, and the new owner is seen
        assert await answer_for(owners, "5") == Owned("globex")
        assert lookups.lookups == ["5", "5"]


async def test_not_found_is_cached_for_the_negative_ttl_only() -> None:
    clock = Clock()
    async with (
        scripted_upstream("records", owners={}) as lookups,
        http_ownership(lookups, http_resource(cache=60, negative=5), clock=clock) as owners,
    ):
        assert await answer_for(owners, "9") == NotFound()
        clock.now += 4.9
        lookups.owners["9"] = "acme"
        assert await answer_for(owners, "9") == NotFound()
        assert lookups.lookups == ["9"]
        clock.now += 0.2  # past 5 s, long before the positive 60 s
        assert await answer_for(owners, "9") == Owned("acme")
        assert lookups.lookups == ["9", "9"]


FAILING_ANSWERS: dict[str, Answer] = {
    "a 500": Answer.json({"error": "boom"}, status=500),
    "a 403": Answer.json({"tenant": "acme"}, status=403),
    "a redirect, never followed": Answer(
        status=302, headers={"Location": "/internal/owners/5"}, chunked=False
    ),
    "a 200 without the tenant": Answer.json({"owner": "acme"}),
    "a 200 with an empty tenant": Answer.json({"tenant": ""}),
    "a 200 with a tenant that is not a string": Answer.json({"tenant": 7}),
    "a 200 that is not JSON": Answer(chunks=(b"<html>acme</html>",), content_type="text/html"),
}


@pytest.mark.parametrize("failing", list(FAILING_ANSWERS), ids=str)
async def test_a_failed_lookup_is_never_cached(failing: str) -> None:
    async with scripted_upstream("records", owners={"5": "acme"}) as lookups:
        lookups.answers["/status/5"] = FAILING_ANSWERS[failing]
        resource = http_resource(url="{upstream}/status/{id}", cache=60, negative=60)
        async with http_ownership(lookups, resource) as owners:
            for asked in (1, 2, 3):
                answer = await answer_for(owners, "5")
                assert isinstance(answer, ResolverFailed), answer
                assert lookups.total_hits == asked, "a failure was answered from the cache"
            lookups.answers["/status/5"] = Answer.json({"tenant": "acme"})
            assert await answer_for(owners, "5") == Owned("acme")
            assert lookups.total_hits == 4
        assert lookups.lookups == [], "the redirect was followed"


async def test_a_lookup_that_times_out_fails_and_is_not_cached() -> None:
    async with scripted_upstream("records", owners={"5": "acme"}, delay=0.5) as lookups:
        async with http_ownership(lookups, http_resource(), http_timeout=0.1) as owners:
            assert isinstance(await answer_for(owners, "5"), ResolverFailed)
            lookups.delay = 0.0
            assert await answer_for(owners, "5") == Owned("acme")
            assert lookups.lookups == ["5", "5"]


async def test_an_unreachable_lookup_server_fails_closed() -> None:
    unreachable = Scripted("gone", url=f"http://127.0.0.1:{free_port()}")
    async with http_ownership(unreachable, http_resource()) as owners:
        assert isinstance(await answer_for(owners, "5"), ResolverFailed)


class FlakyRegistry(MemoryRegistry):
    """A registry whose first ``failures`` reads raise, as a store that is down would."""

    def __init__(self, owners: dict[tuple[str, str], str], failures: int) -> None:
        super().__init__(owners)
        self.failures = failures

    async def get_owner(self, resource_type: str, object_id: str) -> str | None:
        if self.failures:
            self.failures -= 1
            self.reads += 1
            raise RuntimeError("database is locked")
        return await super().get_owner(resource_type, object_id)


async def test_a_registry_that_raises_gives_resolver_failed_never_cached() -> None:
    registry = FlakyRegistry({("report", "r-1"): "acme"}, failures=2)
    owners = ownership(registry)
    ref = ObjectRef("report", "r-1", "path.report_id")
    for _ in range(2):
        answer = await owners.resolve([ref], upstream="app")
        assert not isinstance(answer, Rejection)
        assert answer[0].answer == ResolverFailed("RuntimeError")
    answer = await owners.resolve([ref], upstream="app")
    assert not isinstance(answer, Rejection) and answer[0].answer == Owned("acme")
    assert registry.reads == 3


async def test_an_unknown_resource_type_fails_without_a_lookup() -> None:
    registry = MemoryRegistry({})
    answer = await ownership(registry).resolve([ObjectRef("ghost", "1", "path.id")], upstream="app")
    assert not isinstance(answer, Rejection)
    assert isinstance(answer[0].answer, ResolverFailed)
    assert registry.reads == 0


async def test_concurrent_lookups_of_one_id_share_one_call() -> None:
    async with (
        scripted_upstream("records", owners={"5": "acme", "6": "globex"}, delay=0.1) as lookups,
        http_ownership(lookups, http_resource()) as owners,
    ):
        answers = await asyncio.gather(
            *(answer_for(owners, "5") for _ in range(20)),
            *(answer_for(owners, "6") for _ in range(20)),
        )
        assert answers == [Owned("acme")] * 20 + [Owned("globex")] * 20
        assert sorted(lookups.lookups) == ["5", "6"], "one call per id, not per request"
        assert lookups.max_concurrent == 2


async def test_a_shared_failure_reaches_every_waiter_and_is_not_cached() -> None:
    async with scripted_upstream("records", delay=0.0) as lookups:
        lookups.answers["/status/5"] = Answer.json({"error": "boom"}, status=503)
        resource = http_resource(url="{upstream}/status/{id}")
        async with http_ownership(lookups, resource) as owners:
            answers = await asyncio.gather(*(answer_for(owners, "5") for _ in range(10)))
            assert all(isinstance(a, ResolverFailed) for a in answers)
            shared = lookups.total_hits
            assert shared < 10, "concurrent lookups were not shared"
            await answer_for(owners, "5")
            assert lookups.total_hits == shared + 1


async def test_a_cancelled_lookup_fails_its_waiters_and_is_asked_again() -> None:
    async with (
        scripted_upstream("records", owners={"5": "acme"}, delay=0.3) as lookups,
        http_ownership(lookups, http_resource()) as owners,
    ):
        leader = asyncio.create_task(answer_for(owners, "5"))
        await until(lambda: lookups.in_flight == 1, "the leader's lookup is under way")
        follower = asyncio.create_task(answer_for(owners, "5"))
        await asyncio.sleep(0.05)  # the follower joins it (no I/O: a few loop turns)
        leader.cancel()
        assert await follower == ResolverFailed("lookup was cancelled")
        with pytest.raises(asyncio.CancelledError):
            await leader
        lookups.delay = 0.0
        assert await answer_for(owners, "5") == Owned("acme")
        assert lookups.lookups == ["5", "5"]


async def test_the_cache_is_bounded_and_evicts_old_entries() -> None:
    registry = MemoryRegistry({("report", f"r-{n}"): "acme" for n in range(5)})
    owners = ownership(registry, cache_size=2)
    for n in (0, 1, 2, 3):
        await owners.resolve([ObjectRef("report", f"r-{n}", "path.id")], upstream="app")
    assert registry.reads == 4
    assert len(owners._cache) <= 2
    await owners.resolve([ObjectRef("report", "r-3", "path.id")], upstream="app")
    assert registry.reads == 4, "the newest entry is still cached"
    await owners.resolve([ObjectRef("report", "r-0", "path.id")], upstream="app")
    assert registry.reads == 5, "the oldest entry was evicted and is asked again"


def owners_db(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant TEXT)")
        conn.executemany(
            "INSERT INTO invoices VALUES (?, ?)", [(5, "acme"), (6, "globex"), (7, "")]
        )
    conn.close()
    return f"sqlite:///{path}"


@asynccontextmanager
async def sql_ownership(query: str, dsn: str) -> AsyncIterator[Ownership]:
    resource = ResourceDef("invoice", SqlOwner(query, dsn), id_type="int")
    owners = Ownership(
        resources={"invoice": resource}, upstreams=UPSTREAMS, registry=MemoryRegistry({})
    )
    await owners.start()
    try:
        yield owners
    finally:
        await owners.close()


async def test_the_sql_resolver_reads_the_owner_with_the_id_bound(tmp_path: Path) -> None:
    dsn = owners_db(tmp_path / "records.db")
    async with sql_ownership("SELECT tenant FROM invoices WHERE id = :id", dsn) as owners:
        assert await answer_for(owners, "5") == Owned("acme")
        assert await answer_for(owners, "6") == Owned("globex")
        assert await answer_for(owners, "8") == NotFound()
        assert isinstance(await answer_for(owners, "7"), ResolverFailed), "an empty owner"


async def test_the_sql_resolver_cannot_write_to_the_system_of_record(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    dsn = owners_db(path)
    writing = "UPDATE invoices SET tenant = 'mallory' WHERE id = :id RETURNING tenant"
    async with sql_ownership(writing, dsn) as owners:
        assert isinstance(await answer_for(owners, "5"), ResolverFailed)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT tenant FROM invoices WHERE id = 5").fetchone() == ("acme",)
    conn.close()


async def test_lookups_are_counted_as_error_miss_and_hit_by_resource() -> None:
    registry = FlakyRegistry({("report", "r-1"): "acme"}, failures=1)
    owners = ownership(registry)
    ref = ObjectRef("report", "r-1", "path.report_id")
    for _ in range(3):  # fails, then looked up, then answered from the cache
        await owners.resolve([ref], upstream="app")
    assert owners.calls == {("report", "error"): 1, ("report", "miss"): 1, ("report", "hit"): 1}
