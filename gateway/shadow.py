"""Shadow mode: every live request decided again by a second rules version, for the record.

The live decision answers; the shadow's never does. ``ShadowRunner.judge`` runs after
the request's audit record is written and before it is forwarded, on the admitted
request, caller and method override the live decision found, through the same
``pipeline.decide_stages`` the live decision ran, with the shadow version's router and
policy. It costs no call to anything:

- no second identity resolution (the live caller is reused);
- no second body read: the body the live decision read (in memory) is reused; a
  shadow route that needs ids from a body the live decision did not read (or spooled
  to disk) is recorded as ``body-not-read`` instead of being judged;
- no owner lookup: owners are read from the live version's owner cache only
  (``Ownership.cached``), which the live decision has just filled for the ids it
  looked up; an owner not in it is recorded as ``owner-unknown`` (not looked up in
  shadow). Both are "unjudged" differences: they keep a report from being clean.

The method a body override asked for is the one the live decision found (the
override is not parsed again). Tenant binding and upload checks read and rewrite the
body, so they are not run again: when both versions' routes bind and check alike,
the shadow takes the live outcome of those checks; when they differ, the request is
recorded as ``checks-not-rerun``.

Differences go to a ``DifferenceWriter``: counted in memory per group (routes,
decisions, reasons) with a few samples each, flushed in batches by one background
task. A batch holds at most ``MAX_PENDING_GROUPS`` groups; a difference of a new
group beyond that is dropped and counted (``gatehold_shadow_differences_dropped_total``),
never waited for. Nothing here can fail or delay the live request beyond the shadow
decision's own CPU time (measured in ``bench/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.bodies import Body
from gateway.context import Deciders, Gateway
from gateway.errors import StoreUnavailable
from gateway.headers import is_websocket_upgrade
from gateway.model import (
    Admitted,
    Anonymous,
    Decision,
    HttpOwner,
    IdSource,
    IncomingRequest,
    MatchResult,
    ObjectRef,
    Principal,
    Reason,
    RegistryOwner,
    Rejection,
    ResolvedRef,
    ResolverFailed,
    ResourceDef,
    Route,
    RouteMatch,
    RuleSet,
)
from gateway.objects import Extracted, ObjectExtractor
from gateway.override import Prepared
from gateway.ownership import KEPT_AFTER_EXPIRY, Ownership
from gateway.policy import Policy
from gateway.routing import Router
from gateway.store import shadow_runs as shadow_store
from gateway.store.notify import stop_task
from gateway.store.shadow_runs import Batch, GroupKey, PendingGroup, Sample
from gateway.tenant_binding import binds

if TYPE_CHECKING:
    from gateway.pipeline import Fit, Verdict

log = logging.getLogger("gatehold")

MAX_PENDING_GROUPS = 256
"""Difference groups one process holds between two flushes; beyond, new ones are dropped."""
FLUSH_SECONDS = 1.0
"""How often a process writes what its shadow decisions found."""
OWNER_GRACE_SECONDS = KEPT_AFTER_EXPIRY
"""How long past its cache time a live owner answer is still read in shadow: the live
decision of the same request read it while fresh, before its audit record was written."""
TIMED_EVERY = 8
"""One shadow decision in so many is timed for ``gatehold_shadow_seconds_total``: reading
the thread's CPU clock is a system call, and reading it twice for every decision cost a
tenth of what the decision itself costs."""
NO_ROUTE = "(no route)"
UNJUDGED = "unjudged"
OWNER_UNKNOWN = "owner-unknown"
BODY_NOT_READ = "body-not-read"
CHECKS_NOT_RERUN = "checks-not-rerun"
UNJUDGED_DETAIL = {
    OWNER_UNKNOWN: "owner unknown (not looked up in shadow)",
    BODY_NOT_READ: "the shadow route reads ids from a body the live decision did not read "
    "into memory; not read again in shadow",
    CHECKS_NOT_RERUN: "the shadow route binds tenants or checks uploads differently; "
    "those checks read the body and are not run in shadow",
}
AFTER_POLICY = frozenset(
    {
        Reason.TENANT_MISMATCH,
        Reason.TENANT_UNSELECTED,
        Reason.PARAM_AMBIGUOUS,
        Reason.BODY_TOO_LARGE,
        Reason.FILE_INFECTED,
        Reason.FILE_NAME_REFUSED,
        Reason.FILE_TOO_LARGE,
        Reason.FILE_TYPE_REFUSED,
        Reason.SCANNER_UNAVAILABLE,
        Reason.UPLOAD_LIMIT,
    }
)
"""Refusals made after the policy allowed: tenant binding and upload checks."""


class Resolved(Protocol):
    """What ``pipeline.decide_stages`` found of the ids (its ``_Objects``)."""

    @property
    def owners(self) -> Sequence[ResolvedRef] | Rejection: ...


DecideStages = Callable[
    [
        Deciders,
        IncomingRequest,
        Admitted,
        Principal | Anonymous | Rejection,
        MatchResult,
        Prepared | Rejection,
        bool,
    ],
    Awaitable[tuple[Decision, Resolved]],
]
"""``pipeline.decide_stages``: objects → ownership → policy, as the live decision runs it."""

_NOT_LOOKED_UP = ResolverFailed(UNJUDGED_DETAIL[OWNER_UNKNOWN])
_NOT_READ = Rejection(Reason.BODY_UNSUPPORTED, UNJUDGED_DETAIL[BODY_NOT_READ])


def reads_body_ids(route: Route) -> bool:
    """Whether ``route`` takes object ids from the request body (JSON or form)."""
    return any(spec.source in (IdSource.BODY, IdSource.FORM) for spec in route.ids)


class CachedOwners(Ownership):
    """The shadow's owner lookups: planned by the shadow's rules, answered only from
    the live version's cache. Never started, never opens a connection."""

    def __init__(self, shadow: Ownership, live: Ownership) -> None:
        # No super().__init__: this resolver holds no cache, pool or engine of its own.
        self._shadow = shadow
        self._live = live

    async def resolve(
        self, refs: Sequence[ObjectRef], *, upstream: str
    ) -> tuple[ResolvedRef, ...] | Rejection:
        live = _LIVE.get()
        if (
            live is not None
            and self._shadow.upstream_url(upstream) == live.upstream_url
            and (shared := _live_owners(live, refs)) is not None
        ):
            return shared  # the live decision's own answers: no cache read
        found = self._shadow.cached(
            refs,
            upstream=upstream,
            cache=self._live,
            grace=OWNER_GRACE_SECONDS,
            names=None if live is None else live.alike,
        )
        if found is None:
            return tuple(ResolvedRef(ref, _NOT_LOOKED_UP) for ref in refs)
        return found


@dataclass(frozen=True, slots=True)
class _Live:
    """What the live decision of the request being judged found, for the shadow to use
    where both versions read it alike."""

    owners: Sequence[ResolvedRef]
    alike: Mapping[str, str]
    """The live name of each shadow resource type looked up alike (``alike_resources``)."""
    match: MatchResult
    upstream_url: str | None
    """The base URL of the live route's upstream: a lookup at ``{upstream}`` reads the same
    owner only where both versions' routes go to the same address."""


_LIVE: ContextVar[_Live | None] = ContextVar("gatehold_shadow_live", default=None)
"""Set while a request's shadow decision runs (a context variable: each request's task
sees its own)."""


def _live_owners(live: _Live, refs: Sequence[ObjectRef]) -> tuple[ResolvedRef, ...] | None:
    """The live decision's owners of ``refs`` when they are the very ids it resolved, of
    resource types both versions look up alike (under the same name or another); else
    ``None``."""
    if len(live.owners) != len(refs):
        return None
    shared: list[ResolvedRef] = []
    for found, ref in zip(live.owners, refs, strict=True):
        theirs = found.ref
        if ref.id != theirs.id or live.alike.get(ref.type) != theirs.type:
            return None
        shared.append(found if theirs == ref else ResolvedRef(ref, found.answer))
    return tuple(shared)


def _same_ids(live: _Live, match: RouteMatch) -> bool:
    """Whether the shadow's route reads the very ids the live route read: the live
    decision read some, with the same id specs (their id types included) on the same
    path parameters, from the path and query only (no body). Reading ids needs nothing
    else of the rules; their owners are another matter (``_same_refs``)."""
    theirs = live.match
    return (
        bool(live.owners)  # ids were read live: not skipped (public route, screen, no caller)
        and isinstance(theirs, RouteMatch)
        and match.route.ids == theirs.route.ids
        and match.params == theirs.params
        and all(spec.source in (IdSource.PATH, IdSource.QUERY) for spec in match.route.ids)
    )


class ReadObjects(ObjectExtractor):
    """The shadow's id extraction: the live extractor on the body already read, and
    never a read of its own."""

    def __init__(self, live: ObjectExtractor) -> None:
        self._live = live

    async def extract(
        self,
        request: IncomingRequest,
        match: RouteMatch,
        *,
        query: str = "",
        body: Body | None = None,
    ) -> Extracted | Rejection:
        if body is None and reads_body_ids(match.route):
            return _NOT_READ
        live = _LIVE.get()
        if body is None and live is not None and _same_ids(live, match):
            return Extracted(tuple(found.ref for found in live.owners), None)
        return await self._live.extract(request, match, query=query, body=body)


@dataclass(frozen=True, slots=True)
class ShadowRules:
    """The stages of the version in shadow that differ from the live ones."""

    run_id: int
    version_id: int
    router: Router
    policy: Policy
    ownership: Ownership
    """Plans lookups by the shadow's resources; never started."""
    ruleset: RuleSet
    same_routes: frozenset[str] = frozenset()
    """Routes that decide exactly as the live version's (``same_routes``)."""
    alike_resources: Mapping[str, str] = field(default_factory=dict)
    """The live name of each resource type whose owners both versions look up alike
    (``alike_resources``)."""
    compared_with: int | None = None
    """The live version ``same_routes`` was found against; ``None``: not compared yet."""


def same_routes(live: RuleSet, shadow: RuleSet) -> frozenset[str]:
    """The names of the shadow's routes that decide every request exactly as the live
    route of that name does: the same definition, under the same roles, second-factor
    tenants, resources and upstreams (everything a decision reads from the rules). A
    request both versions route there needs no second decision: it is the live one."""
    if (live.roles, live.mfa_tenants, live.resources, live.upstreams) != (
        shadow.roles,
        shadow.mfa_tenants,
        shadow.resources,
        shadow.upstreams,
    ):
        return frozenset()
    theirs = {route.name: route for route in live.routes}
    return frozenset(route.name for route in shadow.routes if theirs.get(route.name) == route)


def alike_resources(live: RuleSet, shadow: RuleSet) -> dict[str, str]:
    """For each of the shadow's resource types whose owners it looks up exactly as one of
    the live version's, the live type's name: the owners the live decision of the same
    request found, or the live cache holds, are the shadow's too.

    Looked up alike: the same owner lookup (URL and tenant field, SQL query, or the
    registry) with the same id type, and an upstream a lookup names at the same address.
    A lookup at the route's own upstream is alike only for requests whose routes go to
    the same address in both versions (``CachedOwners`` checks it per request). How long
    answers are cached does not matter: the shadow never looks up and reads the live
    answers either way. A
    type of the same name is preferred; a renamed one (a learned draft names resources
    after path segments) is matched to a live type defined alike, except registry types,
    whose answers are kept per type name.
    """
    found: dict[str, str] = {}
    for name, resource in shadow.resources.items():
        same_name = live.resources.get(name)
        if same_name is not None and _looked_up_alike(live, same_name, shadow, resource):
            found[name] = name
        elif not isinstance(resource.owner, RegistryOwner):
            for theirs in live.resources.values():
                if _looked_up_alike(live, theirs, shadow, resource):
                    found[name] = theirs.name
                    break
    return found


def _looked_up_alike(
    live: RuleSet, theirs: ResourceDef, shadow: RuleSet, ours: ResourceDef
) -> bool:
    if theirs.owner != ours.owner or theirs.id_type != ours.id_type:
        return False
    named = ours.owner.upstream if isinstance(ours.owner, HttpOwner) else None
    return named is None or _url(live, named) == _url(shadow, named)


def _url(rules: RuleSet, upstream: str) -> str | None:
    found = rules.upstreams.get(upstream)
    return None if found is None else found.url


@dataclass(frozen=True, slots=True)
class Judged:
    """The shadow's decision on one request: a verdict, or why it could not give one."""

    route: str
    allowed: bool | None
    """``None``: unjudged (``reason`` says why)."""
    reason: str
    detail: str

    @property
    def decision(self) -> str:
        if self.allowed is None:
            return UNJUDGED
        return "allow" if self.allowed else "deny"


class DifferenceWriter:
    """Batches one process's shadow findings and writes them every ``flush_seconds``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        max_groups: int = MAX_PENDING_GROUPS,
    ) -> None:
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._max_groups = max_groups
        self._run_id: int | None = None
        self._decided = self._agreed = self._unjudged = self._dropped = 0
        self._groups: dict[GroupKey, PendingGroup] = {}
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.dropped_total = 0
        """Differences this process could not keep (batch full, or the store refused it)."""
        self.flushes_failed = 0

    def counted(self, run_id: int, *, agreed: bool, unjudged: bool) -> None:
        """Count one request decided by both versions."""
        self._switch(run_id)
        self._decided += 1
        self._agreed += agreed
        self._unjudged += unjudged

    def differed(self, run_id: int, key: GroupKey, sample: Sample) -> None:
        """Keep one difference: counted in its group, its sample kept while there is room."""
        self._switch(run_id)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self._max_groups:
                self._dropped += 1
                self.dropped_total += 1
                return
            group = self._groups[key] = PendingGroup(0, sample.at, sample.at)
        group.count += 1
        group.last_at = sample.at
        if len(group.samples) < shadow_store.SAMPLES_PER_GROUP:
            group.samples.append(sample)

    def _switch(self, run_id: int) -> None:
        """A new run starts from empty counters (what the old one had is flushed)."""
        if self._run_id != run_id:
            if self._run_id is not None and (self._decided or self._groups):
                self._schedule(self._take())
            self._run_id = run_id

    def _take(self) -> Batch | None:
        if self._run_id is None or not (self._decided or self._groups or self._dropped):
            return None
        batch = Batch(
            self._run_id,
            self._decided,
            self._agreed,
            self._unjudged,
            self._dropped,
            self._groups,
        )
        self._decided = self._agreed = self._unjudged = self._dropped = 0
        self._groups = {}
        return batch

    def _schedule(self, batch: Batch | None) -> None:
        if batch is not None:
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._writes.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._writes.discard)

    async def flush(self) -> None:
        """Write what is pending now (tests and shutdown; the loop does it on its own)."""
        await self._write(self._take())

    async def _write(self, batch: Batch | None) -> None:
        if batch is None:
            return
        async with self._lock:
            try:
                late = await shadow_store.record(self._engine, batch)
            except (StoreUnavailable, OSError) as error:
                lost = sum(group.count for group in batch.groups.values())
                self.dropped_total += lost
                self.flushes_failed += 1
                log.warning("shadow: %d differences not recorded: %s", lost, error)
            except Exception:  # a broken store must not end the loop; said once per batch
                self.flushes_failed += 1
                log.exception("shadow: differences not recorded")
            else:
                self._late(batch, late)

    def _late(self, batch: Batch, late: int) -> None:
        """Say so when a batch reached its run after the run ended (``record``)."""
        if late:
            self.dropped_total += late
            log.warning(
                "shadow: run %d had ended; %d differences written after its end are "
                "counted as dropped, not in its report",
                batch.run_id,
                late,
            )

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._writes, return_exceptions=True)
            await self.flush()


class ShadowRunner:
    """One process's shadow: the rules in shadow (``None`` when none), and its findings."""

    def __init__(
        self, writer: DifferenceWriter, live_version: Callable[[], int], decide: DecideStages
    ) -> None:
        """``decide``: ``pipeline.decide_stages``, the live decision's own objects → ownership →
        policy step (handed in: the pipeline imports this module, not the reverse)."""
        self.current: ShadowRules | None = None
        self.writer = writer
        self._live_version = live_version
        self._decide = decide
        self._built: tuple[Gateway, ShadowRules, Deciders] | None = None
        self.decisions: dict[str, int] = {"yes": 0, "no": 0, UNJUDGED: 0}
        """``gatehold_shadow_decisions_total`` by ``agree``."""
        self.errors = 0
        self.seconds = 0.0
        """CPU time spent deciding the timed decisions in shadow (one in ``TIMED_EVERY``):
        the event loop thread's own, so that other processes sharing the CPU (the
        upstream, a front proxy) are not counted in it."""
        self.timed = 0
        """Shadow decisions counted in ``seconds``."""
        self._judged = 0

    def run(self, rules: ShadowRules | None) -> None:
        """Decide in shadow with ``rules`` from the next request on (``None``: stop)."""
        self.current = rules
        self._built = None

    async def judge(
        self, gw: Gateway, request: IncomingRequest, verdict: Verdict, *, fit: Fit | None = None
    ) -> None:
        """Decide ``verdict``'s request again in shadow and record a difference; never
        raises, never reads the body or asks an owner. ``fit``: the forward-auth check
        of what it can decide, judged on the shadow's route as the live decision was."""
        rules = self.current
        admitted = verdict.admitted
        if rules is None or not isinstance(admitted, Admitted) or verdict.prepared is None:
            return
        if verdict.observed is not None:  # observe mode forwarded it: compare the rules'
            verdict = verdict._replace(decision=verdict.observed)  # own decision
        self._judged += 1
        timed = self._judged % TIMED_EVERY == 0
        began = time.thread_time() if timed else 0.0
        try:
            judged = await self._judge(rules, gw, request, admitted, verdict, fit)
            self._note(rules, admitted, verdict, judged)
        except Exception:  # the shadow never fails a live request
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.exception("shadow decision failed (%d so far)", self.errors)
        if timed:
            self.seconds += time.thread_time() - began
            self.timed += 1

    def _deciders(self, gw: Gateway, rules: ShadowRules) -> Deciders:
        built = self._built
        if built is not None and built[0] is gw and built[1] is rules:
            return built[2]
        deciders: Deciders = replace(
            gw,
            router=rules.router,
            policy=rules.policy,
            ownership=CachedOwners(rules.ownership, gw.ownership),
            objects=ReadObjects(gw.objects),
        )
        self._built = (gw, rules, deciders)
        return deciders

    async def _judge(
        self,
        rules: ShadowRules,
        gw: Gateway,
        request: IncomingRequest,
        admitted: Admitted,
        verdict: Verdict,
        fit: Fit | None,
    ) -> Judged:
        deciders = self._deciders(gw, rules)
        prepared = verdict.prepared
        if isinstance(prepared, Prepared) and prepared.body is None:
            read = verdict.body
            if isinstance(read, bytes):  # the body the live decision read, in memory
                prepared = replace(prepared, body=Body(read, None, len(read)))
        match = deciders.router.match(admitted.target, verdict.method)
        live_match = verdict.match
        if (
            isinstance(match, RouteMatch)
            and isinstance(live_match, RouteMatch)
            and match.route.name == live_match.route.name
            and match.route.name in rules.same_routes
            and rules.compared_with == self._live_version()
        ):  # the same route under the same rules: the live decision is the shadow's too
            live = verdict.decision
            return Judged(match.route.name, live.allowed, live.reason.value, "")
        if fit is not None and (unfit := fit(match, verdict.method)) is not None:
            return Judged(_route_name(match), False, unfit.reason.value, unfit.detail)
        websocket = is_websocket_upgrade(request.headers)
        assert prepared is not None  # noqa: S101 (judge returned early otherwise)
        owners = verdict.objects
        shared = (
            None
            if isinstance(owners, Rejection)
            else _Live(
                owners,
                rules.alike_resources,
                live_match,
                gw.ownership.upstream_url(live_match.route.upstream)
                if isinstance(live_match, RouteMatch)
                else None,
            )
        )
        token = _LIVE.set(shared)
        try:
            decision, objects = await self._decide(
                deciders, request, admitted, verdict.principal, match, prepared, websocket
            )
        finally:
            _LIVE.reset(token)
        route = _route_name(match)
        owners = objects.owners
        if owners is _NOT_READ:
            return _unjudged(route, BODY_NOT_READ)
        if not isinstance(owners, Rejection) and any(
            found.answer is _NOT_LOOKED_UP for found in owners
        ):
            return _unjudged(route, OWNER_UNKNOWN)
        return _after_policy(route, decision, match, verdict)

    def _note(
        self, rules: ShadowRules, admitted: Admitted, verdict: Verdict, judged: Judged
    ) -> None:
        live = verdict.decision
        agreed = judged.allowed == live.allowed and judged.reason == live.reason.value
        unjudged = judged.allowed is None
        self.decisions["yes" if agreed else UNJUDGED if unjudged else "no"] += 1
        self.writer.counted(rules.run_id, agreed=agreed, unjudged=unjudged)
        if agreed:
            return
        key = GroupKey(
            live_version=self._live_version(),
            live_route=_route_name(verdict.match),
            shadow_route=judged.route,
            live_decision="allow" if live.allowed else "deny",
            live_reason=live.reason.value,
            shadow_decision=judged.decision,
            shadow_reason=judged.reason,
        )
        target = admitted.target
        principal = verdict.principal
        sample = Sample(
            at=time.time(),
            request_id=admitted.request_id,
            method=verdict.method,
            target=target.path + (f"?{target.query}" if target.query else ""),
            principal=_caller(principal),
            tenant=live.tenant
            or (principal.active_tenant if isinstance(principal, Principal) else None)
            or "",
            live_detail=_detail(live),
            shadow_detail=judged.detail,
        )
        self.writer.differed(rules.run_id, key, sample)


def _after_policy(route: str, decision: Decision, match: MatchResult, verdict: Verdict) -> Judged:
    """The shadow's verdict once its policy allowed: the live tenant-binding and upload
    outcome when both routes check alike (those checks read the body), else unjudged."""
    if not decision.allowed or not isinstance(match, RouteMatch):
        return Judged(route, decision.allowed, decision.reason.value, _detail(decision))
    ours = match.route
    live_match = verdict.match
    checks = binds(ours) or ours.upload is not None
    if not checks:
        return Judged(route, True, decision.reason.value, _detail(decision))
    live = verdict.decision
    passed_policy = live.allowed or live.reason in AFTER_POLICY
    if not passed_policy:  # the live policy refused; the shadow's would have gone on
        return Judged(route, True, decision.reason.value, _detail(decision))
    theirs = live_match.route if isinstance(live_match, RouteMatch) else None
    if theirs is None or binds(theirs) != binds(ours) or theirs.upload != ours.upload:
        return _unjudged(route, CHECKS_NOT_RERUN)
    if live.allowed:
        return Judged(route, True, decision.reason.value, _detail(decision))
    return Judged(route, False, live.reason.value, _detail(live))


def _unjudged(route: str, why: str) -> Judged:
    return Judged(route, None, why, UNJUDGED_DETAIL[why])


def _route_name(match: MatchResult) -> str:
    return match.route.name if isinstance(match, RouteMatch) else NO_ROUTE


def _caller(principal: Principal | Anonymous | Rejection) -> str:
    if isinstance(principal, Principal):
        return principal.email
    if isinstance(principal, Rejection):
        return f"refused credential ({principal.reason.value})"
    return "anonymous"


def _detail(decision: Decision) -> str:
    """The decision's reason chain, as simulate shows it (bounded)."""
    return " / ".join(decision.explain)[:2000] or decision.detail


class ShadowMetrics(Collector):
    """``gatehold_shadow_decisions_total{agree}`` and the dropped differences."""

    def __init__(self, runner: ShadowRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "gatehold_shadow_decisions",
            "Requests decided again by the rules version in shadow, by whether it agreed "
            "(yes, no, unjudged: it could not decide without a lookup or body read).",
            labels=["agree"],
        )
        for agree, count in self._runner.decisions.items():
            decisions.add_metric([agree], count)
        yield decisions
        dropped = CounterMetricFamily(
            "gatehold_shadow_differences_dropped",
            "Shadow differences this process could not record (batch full or store down).",
        )
        dropped.add_metric([], self._runner.writer.dropped_total)
        yield dropped
        spent = CounterMetricFamily(
            "gatehold_shadow_seconds",
            "CPU time spent deciding the timed requests in shadow (one in "
            f"{TIMED_EVERY}; the shadow's cost per request is this over "
            "gatehold_shadow_timed_decisions_total).",
        )
        spent.add_metric([], self._runner.seconds)
        yield spent
        timed = CounterMetricFamily(
            "gatehold_shadow_timed_decisions",
            "Requests decided in shadow whose CPU time gatehold_shadow_seconds_total counts.",
        )
        timed.add_metric([], self._runner.timed)
        yield timed
        errors = CounterMetricFamily(
            "gatehold_shadow_errors", "Shadow decisions that failed (the live answer stood)."
        )
        errors.add_metric([], self._runner.errors)
        yield errors


SHADOW = web.AppKey("shadow", ShadowRunner)
