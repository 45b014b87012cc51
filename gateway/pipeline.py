"""The request pipeline, written once: the only place the stage order appears.

    ingress → identity → method override → route → objects → ownership → decide
            → audit → forward → guard → relay

``decide`` runs every stage up to the verdict and is the one decision path: live
traffic (``handle``) and ``rules simulate`` (``admin/explain.py``) both call it.
``handle`` adds what only live traffic has (the in-flight cap, the audit record,
the answer); ``deliver`` forwards what was allowed. Stages return values
(``Rejection``, ``Decision``); only broken infrastructure raises, and each such
exception is turned into its answer right where it can happen. Every refusal goes
out through ``refusals.py``.

Each stage's time goes to ``gatehold_stage_seconds{stage=…}`` through ``_lap``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import IO, Any, NamedTuple

from aiohttp import web

from gateway.audit import event_entry
from gateway.bodies import Body
from gateway.context import Deciders, Gateway
from gateway.created import learn_created
from gateway.errors import BodyTooLarge, StoreUnavailable, UpstreamFailed
from gateway.forward import Refused
from gateway.headers import is_websocket_upgrade
from gateway.live import LIVE
from gateway.logs import note_refused
from gateway.metrics import LoopHistogram
from gateway.model import (
    ANONYMOUS,
    Admitted,
    Anonymous,
    AuditEntry,
    AuditReceipt,
    Decision,
    IncomingRequest,
    MatchResult,
    NoRoute,
    Outcome,
    Principal,
    Reason,
    Rejection,
    ResolvedRef,
    Route,
    RouteMatch,
    UploadReport,
)
from gateway.observe import forwarded_anyway, note_observed, observed_record, verdict_of
from gateway.override import Prepared, with_override
from gateway.policy import refused
from gateway.query_rules import check_query
from gateway.refusals import observe_denial, refuse, reject_unadmitted
from gateway.shadow import SHADOW
from gateway.tenant_binding import bind_tenant, binds, refused_binding

AUDIT_UNAVAILABLE_DETAIL = (
    "The audit log cannot record requests right now, so nothing was passed on. "
    "Try again in a few seconds."
)
Caller = Principal | Anonymous | Rejection
Gate = Callable[[Caller, Admitted], Rejection | None]
"""A check made once the caller is known, before any body is read (the in-flight cap)."""
Fit = Callable[[MatchResult, str], Rejection | None]
"""A check of the matched route and method before any id or body is read: whether this
way of asking can decide it at all (forward-auth cannot see bodies or answers)."""


class Verdict(NamedTuple):
    """Everything ``decide`` found out about one request, and the decision.

    Immutable; a named tuple rather than a frozen dataclass because one is made per
    request on the hot path, and a tuple is built in a quarter of the time.
    """

    admitted: Admitted | Rejection
    """The canonical request, or why ingress refused it (then nothing else was read)."""
    principal: Caller
    method: str
    """The method decided on: the one on the wire, or a body's method override."""
    prepared: Prepared | Rejection | None
    """The method override step's result; ``None`` when the request stopped before it."""
    match: MatchResult
    objects: Sequence[ResolvedRef] | Rejection
    """The ids of the request and their owners, or why they could not be read."""
    decision: Decision
    body: bytes | IO[bytes] | None = None
    """The body as inspected, to forward as it was read; ``None`` when none was read."""
    held: Rejection | None = None
    """Why the gate stopped the request before its body was read, if it did."""
    upload: UploadReport | None = None
    """What the upload check saw of the files (routes with ``upload`` rules)."""
    spooled: Body | None = None
    """The checked upload ``body`` is read from; its temporary file goes with it."""
    observed: Decision | None = None
    """The rules' own refusal, when observe mode forwards the request anyway
    (``observe.py``); ``decision`` is then the one it is forwarded with."""


def request_record(verdict: Verdict, admitted: Admitted, user_agent: str) -> AuditEntry:
    """The request's audit entry from its verdict: one shape for the proxy and forward-auth."""
    match = verdict.match
    entry = with_override(
        verdict.prepared,
        admitted=admitted,
        method=verdict.method,
        user_agent=user_agent,
        principal=verdict.principal,
        match=match,
        decision=verdict.observed or verdict.decision,
        upstream=match.route.upstream if isinstance(match, RouteMatch) else "",
    )
    return entry if verdict.observed is None else observed_record(entry, match)


async def decide(
    gw: Deciders,
    request: IncomingRequest,
    *,
    principal: Caller | None = None,
    gate: Gate | None = None,
    fit: Fit | None = None,
) -> Verdict:
    """Ingress → identity → method override → route → objects → ownership → policy.

    The route's query constraints are judged before any id is read; an allowed request
    on a route that binds the tenant is bound here (``tenant_binding``): the verdict
    carries the bound target and checked body, or the binding's refusal.

    ``principal``, when given, stands for the caller instead of the request's
    credential (``rules simulate`` decides as a named user). ``gate`` runs once the
    caller is known, before any body is read; WebSockets pass it (they are long-lived
    and capped elsewhere). ``fit`` runs once the route is known, before any id is read
    (``forward_auth`` refuses routes it cannot decide without the body or the answer).
    Neither the audit record nor the answer is made here.
    """
    stage = gw.metrics.stages
    lap = time.perf_counter()
    admitted = gw.ingress.admit(request)
    lap = _lap(stage.ingress, lap)
    if isinstance(admitted, Rejection):
        return Verdict(admitted, ANONYMOUS, request.method, None, _NO_ROUTE, (), refused(admitted))
    caller = await gw.identity.resolve(request) if principal is None else principal
    lap = _lap(stage.identity, lap)
    websocket = _is_websocket(request)
    if gate is not None and not websocket and (held := gate(caller, admitted)) is not None:
        return Verdict(
            admitted, caller, request.method, None, _NO_ROUTE, (), refused(held), held=held
        )
    prepared = await gw.overrides.prepare(request, admitted.target, caller)
    method = prepared.method if isinstance(prepared, Prepared) else request.method
    match = gw.router.match(admitted.target, method)
    lap = _lap(stage.route, lap)
    if fit is not None and (unfit := fit(match, method)) is not None:
        return Verdict(admitted, caller, method, prepared, match, (), refused(unfit))
    decision, objects = await decide_stages(
        gw, request, admitted, caller, match, prepared, websocket
    )
    observed = None
    anyway = forwarded_anyway(caller, match, decision, gw.clock(), websocket=websocket)
    if anyway is not None:
        observed, decision = decision, anyway
    body = objects.body
    if decision.allowed and isinstance(match, RouteMatch) and binds(match.route):
        admitted, decision, body = await _bind(
            gw, request, admitted, match, method, decision, objects
        )
    upload, spooled = None, None
    if decision.allowed and isinstance(match, RouteMatch) and match.route.upload is not None:
        decision, spooled, upload = await _check_upload(gw, request, match.route, decision, body)
        body = spooled.forwardable() if spooled is not None else body
    _lap(stage.decide, lap)
    return Verdict(
        admitted,
        caller,
        method,
        prepared,
        match,
        objects.owners,
        decision,
        body,
        upload=upload,
        spooled=spooled,
        observed=observed if decision.allowed else None,  # a binding or upload refused it
    )


async def handle(request: web.Request) -> web.StreamResponse:
    """Guard one request end to end, under the rules in force when it arrived."""
    live = request.app[LIVE]
    gw = live.enter()
    try:
        return await _handle(gw, request)
    finally:
        live.leave(gw)


async def _handle(gw: Gateway, request: web.Request) -> web.StreamResponse:
    started = time.monotonic()
    verdict = await decide(gw, request, gate=partial(gw.in_flight.enter, request))
    admitted, principal, match, decision = (
        verdict.admitted,
        verdict.principal,
        verdict.match,
        verdict.decision,
    )
    if isinstance(admitted, Rejection):
        return await reject_unadmitted(gw, request, admitted)
    if verdict.held is not None:
        return _refuse_busy(gw, request, admitted, principal, verdict.held)
    lap = time.perf_counter()
    route = match.route.name if isinstance(match, RouteMatch) else ""
    try:
        entry = request_record(verdict, admitted, request.headers.get("User-Agent", ""))
        if verdict.upload is not None:
            entry.data["upload"] = verdict.upload.as_data()
        receipt = await gw.audit.begin(entry)
    except StoreUnavailable:
        refusal = Rejection(Reason.AUDIT_UNAVAILABLE, AUDIT_UNAVAILABLE_DETAIL)
        note_refused(refusal.reason.value)
        return refuse(gw, request, admitted, refusal, receipt=None, started=started, route=route)
    _lap(gw.metrics.stages.audit_wait, lap)
    if verdict.observed is not None:
        await asyncio.sleep(await note_observed(gw, principal, verdict.observed, admitted, match))
    if (shadow := request.app.get(SHADOW)) is not None and shadow.current is not None:
        await shadow.judge(gw, request, verdict)  # never changes or fails the answer
    if not decision.allowed or not isinstance(match, RouteMatch):
        await asyncio.sleep(await observe_denial(gw, principal, decision, admitted))
        return refuse(
            gw, request, admitted, decision, receipt=receipt, started=started, route=route
        )
    return await deliver(
        gw, request, admitted, principal, match, decision, verdict.body, receipt, arrived=started
    )


async def deliver(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Caller,
    match: RouteMatch,
    decision: Decision,
    body: bytes | IO[bytes] | None,
    receipt: AuditReceipt,
    *,
    arrived: float,
) -> web.StreamResponse:
    """Forward an allowed, audited request and relay the guarded answer."""
    stage = gw.metrics.stages
    started = time.monotonic()
    lap = time.perf_counter()
    name = match.route.name
    caller = principal if isinstance(principal, Principal) else None
    try:
        if _is_websocket(request):
            response, outcome = await gw.forward.websocket(
                request,
                admitted=admitted,
                principal=caller,
                match=match,
                decision=decision,
                started=started,
            )
            gw.audit.finish(receipt, outcome)
            gw.metrics.decided(
                name, verdict_of(decision), decision.reason.value, time.monotonic() - arrived
            )
            return response
        reply = await gw.forward.send(
            request, admitted=admitted, principal=caller, match=match, decision=decision, body=body
        )
    except UpstreamFailed as failure:
        reason, kind = _failure_reason(failure)
        gw.metrics.upstream_failed(failure.upstream, kind)
        return refuse(
            gw, request, admitted, Rejection(reason), receipt=receipt, started=started, route=name
        )
    except BodyTooLarge:
        refusal = Rejection(Reason.BODY_TOO_LARGE, "the request body exceeds this route's limit")
        return refuse(gw, request, admitted, refusal, receipt=receipt, started=started, route=name)
    except Refused as refused_:
        return refuse(
            gw, request, admitted, refused_.rejection, receipt=receipt, started=started, route=name
        )
    sent, lap = lap, _lap(stage.upstream, lap)
    gw.metrics.upstream_answered(match.route.upstream, lap - sent, reply.status)
    guarded = await gw.guard.inspect(reply, match=match, decision=decision)
    checked = guarded.answer
    if isinstance(checked, Rejection):
        return refuse(
            gw,
            request,
            admitted,
            checked,
            receipt=receipt,
            started=started,
            route=name,
            guard=guarded.report,
        )
    await learn_created(gw, match, decision, checked)  # before the creator can ask for it
    response, outcome = await gw.forward.relay(request, checked, started=started)
    if outcome.cut:
        _cut_short(gw, receipt, outcome, upstream=match.route.upstream, route=name)
        return response
    gw.audit.finish(receipt, replace(outcome, guard=guarded.report))
    _lap(stage.response, lap)
    gw.metrics.decided(
        name, verdict_of(decision), decision.reason.value, time.monotonic() - arrived
    )
    return response


def _failure_reason(failure: UpstreamFailed) -> tuple[Reason, str]:
    """The refusal reason of an upstream failure, and its metrics kind."""
    if failure.timeout:
        return Reason.UPSTREAM_TIMEOUT, "timeout"
    if failure.invalid:
        return Reason.UPSTREAM_INVALID, "invalid"
    return Reason.UPSTREAM_REFUSED, "refused"


def _cut_short(
    gw: Gateway, receipt: AuditReceipt, outcome: Outcome, *, upstream: str, route: str
) -> None:
    """Record an answer the upstream broke off mid-body (its head already went out, the
    client's connection is closed); the outcome row says how far it got."""
    gw.audit.finish(receipt, outcome, reason=Reason.UPSTREAM_RESET.value)
    gw.metrics.upstream_failed(upstream, "reset")
    gw.metrics.decided(route, "deny", Reason.UPSTREAM_RESET.value, outcome.duration_ms / 1000)
    note_refused(Reason.UPSTREAM_RESET.value)


def _refuse_busy(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Caller,
    busy: Rejection,
) -> web.StreamResponse:
    """429 for a caller with too many requests in progress; audited, nothing forwarded."""
    gw.audit.record(busy_record(principal, admitted, busy, request.method, limit=busy.detail))
    return refuse(gw, request, admitted, busy, receipt=None)


def busy_record(
    principal: Caller, admitted: Admitted, busy: Rejection, method: str, **data: Any
) -> AuditEntry:
    """The request record of one held by the in-flight cap before any body was read:
    the proxy's and forward-auth's alike."""
    return event_entry(
        "request",
        actor=principal.email if isinstance(principal, Principal) else "anonymous",
        request_id=admitted.request_id,
        decision="deny",
        reason=busy.reason.value,
        method=method,
        path=admitted.target.path,
        client=admitted.client_ip,
        **data,
    )


def _lap(stage: LoopHistogram, since: float) -> float:
    """Observe the time since ``since`` for ``stage``; returns now, the next stage's start."""
    now = time.perf_counter()
    stage.observe(now - since)
    return now


async def decide_stages(
    gw: Deciders,
    request: IncomingRequest,
    admitted: Admitted,
    principal: Caller,
    match: MatchResult,
    prepared: Prepared | Rejection,
    websocket: bool,
) -> tuple[Decision, _Objects]:
    """Objects → ownership → decide, with every refusal that needs no owner made first.

    A body that cannot be read as the app will read it is refused whatever it names.
    ``Policy.screen`` then judges the route, the caller's roles and the enumeration
    block; only a request it cannot settle has its ids read and their owners looked up.
    """
    if isinstance(prepared, Rejection):
        return refused(prepared), _Objects(prepared, None)
    read = prepared.body
    blocked = gw.enumeration.blocked(principal)
    early = gw.policy.screen(
        principal=principal,
        match=match,
        method=prepared.method,
        websocket=websocket,
        blocked=blocked,
    )
    if early is not None and not early.allowed:
        return early, _Objects((), read.forwardable() if read else None, read)
    if isinstance(match, RouteMatch) and (unfit := check_query(admitted.target.query, match.route)):
        return replace(refused(unfit), detail=unfit.detail), _Objects(unfit, None)
    if early is not None:
        return early, _Objects((), read.forwardable() if read else None, read)
    objects = await _resolve_objects(gw, request, admitted, principal, match, read)
    decision = gw.policy.decide(
        principal=principal,
        match=match,
        method=prepared.method,
        objects=objects.owners,
        now=gw.clock(),
        websocket=websocket,
        blocked=blocked,
    )
    return decision, objects


class _Objects:
    """The object ids of a request with their owners, and the body read to find them."""

    __slots__ = ("body", "owners", "read")

    def __init__(
        self,
        owners: Sequence[ResolvedRef] | Rejection,
        body: bytes | IO[bytes] | None,
        read: Body | None = None,
    ) -> None:
        self.owners = owners
        self.body = body
        self.read = read
        """The body as read, when it was (``body`` is its forwardable form)."""


_NO_ROUTE = NoRoute()


async def _resolve_objects(
    gw: Deciders,
    request: IncomingRequest,
    admitted: Admitted,
    principal: Caller,
    match: MatchResult,
    read: Body | None,
) -> _Objects:
    """Read and resolve object ids only for a signed-in caller on a matched, non-public route.

    Anonymous callers are refused before any resolver runs, so they cannot make the
    gateway query the system of record; so is any request ``Policy.screen`` refuses.
    Too many ids come back as a refusal from ``Ownership.resolve``, unlooked-up. A body
    already read (for a method override) is inspected and forwarded as read.
    """
    if not isinstance(match, RouteMatch) or match.route.public or not match.route.ids:
        return _Objects((), read.forwardable() if read else None, read)
    if not isinstance(principal, Principal):
        return _Objects((), None)
    extracted = await gw.objects.extract(request, match, query=admitted.target.query, body=read)
    if isinstance(extracted, Rejection):
        return _Objects(extracted, None)
    owners = await gw.ownership.resolve(extracted.refs, upstream=match.route.upstream)
    forwarded = extracted.body or read
    return _Objects(owners, forwarded.forwardable() if forwarded else None, forwarded)


async def _bind(
    gw: Deciders,
    request: IncomingRequest,
    admitted: Admitted,
    match: RouteMatch,
    method: str,
    decision: Decision,
    objects: _Objects,
) -> tuple[Admitted, Decision, bytes | IO[bytes] | None]:
    """Bind an allowed request to its tenant (``tenant_binding``): the target and body
    to audit and forward, or the refusal that replaces the decision."""
    bound = await bind_tenant(
        gw.objects,
        request,
        admitted=admitted,
        route=match.route,
        method=method,
        decision=decision,
        read=objects.read,
        body=objects.body,
    )
    if isinstance(bound, Rejection):
        return admitted, refused_binding(decision, bound), None
    return bound.admitted, bound.decision, bound.body


async def _check_upload(
    gw: Deciders,
    request: IncomingRequest,
    route: Route,
    decision: Decision,
    body: bytes | IO[bytes] | None,
) -> tuple[Decision, Body | None, UploadReport | None]:
    """Judge the files of an allowed request (``uploads``): the checked body to forward
    (``None``: the request had none), or the refusal that replaces the decision (same
    action and tenant, like a binding's)."""
    checked = await gw.uploads.check(request, route, body)
    if checked.refusal is not None:
        return refused_binding(decision, checked.refusal), None, checked.report
    return decision, checked.body, checked.report


def _is_websocket(request: IncomingRequest) -> bool:
    return is_websocket_upgrade(request.headers)
