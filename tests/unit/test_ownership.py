"""Ownership over the registry resolver: the id cap, learned owners, cached answers.

The registry here is a plain in-memory table implementing ``RegistryStore``; the
thing under test is ``Ownership`` (HTTP lookups are covered against real servers in
``tests/security/test_owner_cache_crosses_upstreams.py``).
"""

from __future__ import annotations

import asyncio

from gateway.model import (
    NotFound,
    ObjectRef,
    Owned,
    Reason,
    RegistryOwner,
    Rejection,
    ResourceDef,
    UpstreamDef,
)
from gateway.ownership import Ownership


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
