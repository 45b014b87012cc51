"""The parts of shadow mode that bound it: owners from the cache only, and a writer that
counts what it cannot keep instead of waiting or growing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import (
    HttpOwner,
    ObjectRef,
    Owned,
    RegistryOwner,
    Rejection,
    ResolverFailed,
    ResourceDef,
    RuleSet,
    UpstreamDef,
)
from gateway.ownership import Ownership
from gateway.shadow import DifferenceWriter
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.shadow_runs import GroupKey, Sample
from tests.unit.test_ownership import UPSTREAMS, Clock, MemoryRegistry

REPORT = ResourceDef("report", RegistryOwner(), cache_seconds=60)
REF = ObjectRef("report", "r-1", "path.report_id")


def owners(registry: MemoryRegistry, clock: Clock, resource: ResourceDef = REPORT) -> Ownership:
    return Ownership(
        resources={"report": resource}, upstreams=UPSTREAMS, registry=registry, clock=clock
    )


async def test_cached_owners_are_read_from_the_live_cache_and_never_looked_up() -> None:
    registry, clock = MemoryRegistry({("report", "r-1"): "acme"}), Clock()
    live, shadow = owners(registry, clock), owners(registry, clock)
    assert shadow.cached([REF], upstream="app", cache=live) is None
    assert registry.reads == 0, "a miss is not looked up"
    await live.resolve([REF], upstream="app")
    assert registry.reads == 1
    found = shadow.cached([REF], upstream="app", cache=live)
    assert found is not None and not isinstance(found, Rejection)
    assert [r.answer for r in found] == [Owned("acme")]
    assert live.calls == {("report", "miss"): 1}, "a cached read is not counted as a lookup"
    clock.now += 61
    assert shadow.cached([REF], upstream="app", cache=live) is None, "expired"
    # Just expired: still read with a grace (the live decision read it moments ago) …
    late = shadow.cached([REF], upstream="app", cache=live, grace=10)
    assert late is not None and not isinstance(late, Rejection)
    assert registry.reads == 1
    # … but never by a lookup, which asks again.
    await live.resolve([REF], upstream="app")
    assert registry.reads == 2
    clock.now += 71
    assert shadow.cached([REF], upstream="app", cache=live, grace=10) is None


async def test_a_shadow_that_looks_owners_up_elsewhere_finds_nothing_cached() -> None:
    registry, clock = MemoryRegistry({("report", "r-1"): "acme"}), Clock()
    live = owners(registry, clock)
    await live.resolve([REF], upstream="app")
    over_http = ResourceDef("report", HttpOwner("GET", "{upstream}/owners/{id}", "/tenant"))
    assert owners(registry, clock, over_http).cached([REF], upstream="app", cache=live) is None
    unknown = Ownership(resources={}, upstreams=UPSTREAMS, registry=registry, clock=clock)
    failed = unknown.cached([REF], upstream="app", cache=live)
    assert failed is not None and not isinstance(failed, Rejection)
    assert isinstance(failed[0].answer, ResolverFailed), "unknown to the shadow: fails closed"
    too_many = live.cached([REF] * 101, upstream="app")
    assert isinstance(too_many, Rejection) and registry.reads == 1


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


def key(route: str) -> GroupKey:
    return GroupKey(1, route, route, "allow", "role-allowed", "deny", "role-forbidden")


def sample(n: int) -> Sample:
    return Sample(time.time(), f"r{n}", "GET", f"/x/{n}", "rita@acme.test", "acme", "a", "b")


async def running_run(engine: AsyncEngine) -> int:
    first = await version_store.add_version(engine, "v1", author="t", comment="", now=1.0)
    run, started = await shadow_store.start(engine, first.id, by="t", comment="", now=2.0)
    assert started
    return run.id


async def test_new_groups_beyond_the_bound_are_dropped_and_counted(store: AsyncEngine) -> None:
    run = await running_run(store)
    writer = DifferenceWriter(store, max_groups=4)
    for n in range(300):
        writer.counted(run, agreed=False, unjudged=False)
        writer.differed(run, key(f"route-{n}"), sample(n))
    for n in range(50):  # a hot group already pending: counted, never dropped
        writer.counted(run, agreed=False, unjudged=False)
        writer.differed(run, key("route-0"), sample(n))
    assert writer.dropped_total == 296
    await writer.flush()
    stored = await shadow_store.get_run(store, run)
    assert stored is not None and (stored.decided, stored.dropped) == (350, 296)
    groups = await shadow_store.differences(store, run)
    assert [g.count for g in groups] == [51, 1, 1, 1]
    assert len(groups[0].samples) == shadow_store.SAMPLES_PER_GROUP


async def test_counts_add_up_across_batches_and_samples_stay_capped(store: AsyncEngine) -> None:
    run = await running_run(store)
    writers = [DifferenceWriter(store), DifferenceWriter(store)]  # two processes
    for _ in range(3):
        for writer in writers:
            for n in range(4):
                writer.counted(run, agreed=n == 0, unjudged=False)
                if n:
                    writer.differed(run, key("hot"), sample(n))
            await writer.flush()
    stored = await shadow_store.get_run(store, run)
    assert stored is not None and (stored.decided, stored.agreed) == (24, 6)
    [group] = await shadow_store.differences(store, run)
    assert group.count == 18 and len(group.samples) == shadow_store.SAMPLES_PER_GROUP


async def test_a_store_that_cannot_write_loses_the_batch_counted_not_raised(
    tmp_path: Path,
) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'missing' / 'gatehold.db'}")
    try:
        writer = DifferenceWriter(engine)
        writer.counted(1, agreed=False, unjudged=False)
        writer.differed(1, key("a"), sample(1))
        writer.differed(1, key("a"), sample(2))
        await writer.flush()  # does not raise
        assert (writer.flushes_failed, writer.dropped_total) == (1, 2)
    finally:
        await engine.dispose()


async def test_a_new_run_writes_what_the_old_one_had_and_starts_from_zero(
    store: AsyncEngine,
) -> None:
    """A process that missed the old run's drain writes what it held when the new run
    reaches it: too late for the old run (ended), which only counts its differences as
    dropped; the new run starts from zero."""
    first = await running_run(store)
    stopped = await shadow_store.stop(store, by="t", now=3.0)
    assert stopped is not None
    version = await version_store.add_version(store, "v2", author="t", comment="", now=4.0)
    second, _ = await shadow_store.start(store, version.id, by="t", comment="", now=5.0)
    writer = DifferenceWriter(store)
    for n in range(3):
        writer.counted(first, agreed=n > 0, unjudged=False)
    writer.differed(first, key("late"), sample(1))
    writer.counted(second.id, agreed=False, unjudged=True)
    await writer.close()  # waits for the old run's write, then flushes the new one
    old, new = (
        await shadow_store.get_run(store, first),
        await shadow_store.get_run(store, second.id),
    )
    assert old is not None and (old.decided, old.agreed, old.dropped) == (0, 0, 1)
    assert await shadow_store.differences(store, first) == []
    assert writer.dropped_total == 1
    assert new is not None and (new.decided, new.agreed, new.unjudged) == (1, 0, 1)


def test_same_routes_are_those_defined_alike_under_the_same_roles_and_resources() -> None:
    from gateway.config.loader import load_rules_text
    from gateway.shadow import same_routes
    from tests.support.stack import DEMO_RULES

    env = {"LEDGER_URL": "http://127.0.0.1:9", "LEDGER_DB_DSN": "sqlite:///ledger.db"}
    text = DEMO_RULES.read_text()
    live = load_rules_text(text, source="live", env=env)
    names = {route.name for route in live.routes}
    assert same_routes(live, load_rules_text(text + "# a comment\n", source="s", env=env)) == (
        names
    )
    one_route = text.replace(
        "    query_ids: [{type: invoice, param: invoice}]",
        "    query_ids: [{type: invoice, param: invoice_id}]",
    )
    assert one_route != text
    changed = same_routes(live, load_rules_text(one_route, source="s", env=env))
    assert changed == names - {"invoice-search"}
    roles = text.replace("readonly: {can: [read]}", "readonly: {can: [write]}")
    assert same_routes(live, load_rules_text(roles, source="s", env=env)) == frozenset()


# ---------------------------------------------------------------- the live decision's ids


def _live(owners: tuple[object, ...], match: object, alike: dict[str, str]) -> object:
    from gateway.shadow import _Live

    return _Live(owners, alike, match, "http://app")  # type: ignore[arg-type]


def test_the_live_ids_and_owners_are_reused_only_where_both_versions_read_them_alike() -> None:
    """The shadow takes the ids the live decision found only when it would read the very
    same ones (the same id specs on the same path values, from the path or the query),
    and their owners only for resource types defined alike; anything else is read again
    (owners from the cache, never looked up)."""
    from gateway.model import IdSource, IdSpec, ResolvedRef, Route, RouteMatch
    from gateway.shadow import _live_owners, _same_ids

    path_id = IdSpec("report", IdSource.PATH, "report_id", "slug")
    route = Route("report-read", "/r/{report_id}", None, "app", ids=(path_id,))
    match = RouteMatch(route, {"report_id": "r-1"})
    found = (ResolvedRef(REF, Owned("acme")),)
    alike = {"report": "report"}
    live = _live(found, match, alike)
    assert _same_ids(live, match) and _live_owners(live, [REF]) == found  # type: ignore[arg-type]

    other_value = RouteMatch(route, {"report_id": "r-2"})
    body_id = IdSpec("report", IdSource.BODY, "/report", "slug")
    from_body = RouteMatch(Route("report-edit", "/r", None, "app", ids=(body_id,)), {})
    other_type = IdSpec("report", IdSource.PATH, "report_id", "int")
    typed = RouteMatch(Route("report-read", "/r/{report_id}", None, "app", ids=(other_type,)), {})
    for shadow_match in (other_value, from_body, typed):
        assert not _same_ids(live, shadow_match)  # type: ignore[arg-type]
    # the resource is defined otherwise in the shadow: the same ids, owners read again
    unlike = _live(found, match, {})
    assert _same_ids(unlike, match)  # type: ignore[arg-type]
    assert _live_owners(unlike, [REF]) is None  # type: ignore[arg-type]
    # the live decision read no ids (a public route, a refusal before any id was read,
    # nobody signed in): the shadow reads its own, it never takes "none" for an answer
    nothing = _live((), match, alike)
    assert not _same_ids(nothing, match)  # type: ignore[arg-type]
    # other ids than the live ones: their owners are not the live answers
    assert _live_owners(live, [ObjectRef("report", "r-2", "path.report_id")]) is None  # type: ignore[arg-type]
    # a resource the shadow names otherwise, looked up alike: the live answer, under the
    # shadow's own name (its explanation names its own type)
    renamed = ObjectRef("item", "r-1", "path.item_id")
    under_other_name = _live(found, match, {"item": "report"})
    shared = _live_owners(under_other_name, [renamed])  # type: ignore[arg-type]
    assert shared == (ResolvedRef(renamed, Owned("acme")),)
    assert _live_owners(live, [renamed]) is None, "not alike: not the live answer"  # type: ignore[arg-type]


def _rules(**resources: ResourceDef) -> RuleSet:
    return RuleSet(upstreams=dict(UPSTREAMS), roles={}, resources=dict(resources), routes=())


def test_owners_looked_up_alike_whatever_their_cache_time_or_name() -> None:
    """``alike_resources``: the shadow's resource types whose owners the live ones read
    exactly alike, and under which live name."""
    from gateway.shadow import alike_resources

    invoice = ResourceDef("invoice", HttpOwner("GET", "{upstream}/i/{id}", "/tenant"), "int")
    kept_longer = replace(invoice, cache_seconds=600, negative_cache_seconds=1)
    renamed = replace(invoice, name="item")
    other_field = replace(invoice, owner=HttpOwner("GET", "{upstream}/i/{id}", "/org"))
    other_type = replace(invoice, id_type="slug")
    live = _rules(invoice=invoice, report=REPORT)
    assert alike_resources(live, _rules(invoice=kept_longer)) == {"invoice": "invoice"}
    assert alike_resources(live, _rules(item=renamed)) == {"item": "invoice"}
    assert alike_resources(live, _rules(invoice=other_field)) == {}
    assert alike_resources(live, _rules(invoice=other_type)) == {}
    # registry answers are kept per type name: a renamed registry type is another one
    assert alike_resources(live, _rules(report=REPORT)) == {"report": "report"}
    assert alike_resources(live, _rules(other=replace(REPORT, name="other"))) == {}
    # a lookup at a named upstream: alike where that upstream has the same address
    at_billing = replace(invoice, owner=replace(invoice.owner, upstream="billing"))
    billing = {"billing": UpstreamDef("billing", "http://billing:8080")}
    moved = {"billing": UpstreamDef("billing", "http://billing-2:8080")}
    live_billing = replace(live, resources={"invoice": at_billing}, upstreams=billing)
    assert alike_resources(live_billing, replace(live_billing)) == {"invoice": "invoice"}
    assert alike_resources(live_billing, replace(live_billing, upstreams=moved)) == {}


async def test_a_cached_answer_is_read_only_as_it_was_made() -> None:
    """The cache key holds everything the answer depends on: a shadow that reads the
    tenant from another field finds nothing; one that names the resource otherwise, with
    the live name given, finds the live answer."""
    clock = Clock()
    invoice = ResourceDef("invoice", HttpOwner("GET", "http://app/i/{id}", "/tenant"))
    ref = ObjectRef("invoice", "7", "path.invoice_id")
    live = Ownership(
        resources={"invoice": invoice},
        upstreams=UPSTREAMS,
        registry=MemoryRegistry({}),
        clock=clock,
    )
    key = live._plan(ref, "app")
    assert not isinstance(key, ResolverFailed)
    live._remember(key, Owned("acme"))

    def shadow(resource: ResourceDef) -> Ownership:
        return Ownership(
            resources={resource.name: resource},
            upstreams=UPSTREAMS,
            registry=MemoryRegistry({}),
            clock=clock,
        )

    same = shadow(invoice).cached([ref], upstream="app", cache=live)
    assert same is not None and not isinstance(same, Rejection)
    assert [r.answer for r in same] == [Owned("acme")]
    other_field = replace(invoice, owner=HttpOwner("GET", "http://app/i/{id}", "/org"))
    assert shadow(other_field).cached([ref], upstream="app", cache=live) is None
    item = replace(invoice, name="item")
    as_item = ObjectRef("item", "7", "path.item_id")
    assert shadow(item).cached([as_item], upstream="app", cache=live) is None
    named = shadow(item).cached([as_item], upstream="app", cache=live, names={"item": "invoice"})
    assert named is not None and not isinstance(named, Rejection)
    assert [(r.ref, r.answer) for r in named] == [(as_item, Owned("acme"))]


# ---------------------------------------------------------------- draining and ending a run


def batch(run: int, *, decided: int, differing: int) -> shadow_store.Batch:
    groups = {key("hot"): shadow_store.PendingGroup(differing, 1.0, 1.0, [sample(1)])}
    return shadow_store.Batch(run, decided, decided - differing, 0, 0, groups if differing else {})


async def test_a_draining_run_takes_the_last_writes_and_cannot_be_started_over(
    store: AsyncEngine,
) -> None:
    run = await running_run(store)
    draining = await shadow_store.drain(store, now=3.0)
    assert draining is not None and draining.draining and not draining.ended
    assert await shadow_store.running(store) is None, "followers stop judging"
    assert await shadow_store.drain(store, now=4.0) == draining, "drained once"
    assert await shadow_store.drain(store, now=4.0, run_id=run + 1) is None, "not that run"
    assert await shadow_store.record(store, batch(run, decided=2, differing=1)) == 0
    other = await version_store.add_version(store, "v2", author="t", comment="", now=5.0)
    found, started = await shadow_store.start(store, other.id, by="t", comment="", now=5.0)
    assert not started and found.id == run, "no second run while one drains"

    refused = await shadow_store.finish(store, run, accept=lambda *_: False, by="t", now=6.0)
    assert refused.outcome is shadow_store.Outcome.REFUSED and refused.run is not None
    assert (refused.run.decided, [g.count for g in refused.groups]) == (2, [1])
    again = await shadow_store.running(store)
    assert again is not None and again.id == run, "refused: the same run judges again"
    assert await version_store.active_id(store) is None, "nothing activated"
    late = await shadow_store.finish(store, run, accept=lambda *_: True, by="t", now=7.0)
    assert late.outcome is shadow_store.Outcome.NOT_DRAINING, "only a drained run is decided"


async def test_finishing_activates_and_ends_the_run_in_one_step_and_later_writes_are_dropped(
    store: AsyncEngine,
) -> None:
    run = await running_run(store)
    assert await shadow_store.drain(store, now=3.0) is not None
    done = await shadow_store.finish(store, run, accept=lambda *_: True, by="root", now=4.0)
    assert done.outcome is shadow_store.Outcome.ACTIVATED and done.activation is not None
    assert done.run is not None and done.run.ended and done.run.stopped_by == "root"
    assert await version_store.active_id(store) == done.run.version_id
    assert await shadow_store.current(store) is None
    assert await shadow_store.record(store, batch(run, decided=5, differing=3)) == 3
    assert await shadow_store.record(store, batch(run, decided=4, differing=0)) == 0
    ended = await shadow_store.get_run(store, run)
    assert ended is not None and (ended.decided, ended.dropped) == (0, 3)
    assert await shadow_store.differences(store, run) == []
    twice = await shadow_store.finish(store, run, accept=lambda *_: True, by="t", now=5.0)
    assert twice.outcome is shadow_store.Outcome.NOT_DRAINING


async def test_on_postgresql_a_batch_being_written_as_the_activation_reads_is_waited_for() -> None:
    """A process's write that holds the run's row when the activation decides: the
    decision waits for it and reads it (the row is locked, not read from a snapshot)."""
    from sqlalchemy import update

    from gateway.store import tables
    from tests.support.postgres import fresh_pg_engine

    async with fresh_pg_engine("shadowact") as engine:
        run = await running_run(engine)
        assert await shadow_store.drain(engine, now=3.0) is not None
        runs, groups = tables.shadow_runs, tables.shadow_groups
        async with engine.connect() as writer:  # a flush under way, not committed yet
            await writer.execute(
                update(runs).where(runs.c.id == run).values(decided=runs.c.decided + 1)
            )
            await writer.execute(
                groups.insert().values(
                    run_id=run,
                    live_version=1,
                    live_route="a",
                    shadow_route="a",
                    live_decision="allow",
                    live_reason="role-allowed",
                    shadow_decision="deny",
                    shadow_reason="role-forbidden",
                    count=1,
                    first_at=1.0,
                    last_at=1.0,
                )  # fmt: skip
            )
            deciding = asyncio.create_task(
                shadow_store.finish(
                    engine, run, accept=lambda r, g: r.decided > 0 and not g, by="t", now=4.0
                )
            )
            await asyncio.sleep(0.5)
            assert not deciding.done(), "the decision waits for the write in flight"
            await writer.commit()
        finished = await deciding
        assert finished.outcome is shadow_store.Outcome.REFUSED, "the difference was read"
        assert finished.run is not None and finished.run.decided == 1
        assert [g.count for g in finished.groups] == [1]
        assert await version_store.active_id(engine) is None
