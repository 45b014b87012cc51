"""The request pipeline, written once: the only place the stage order appears.

    ingress → identity → method override → route → objects → ownership → decide
            → audit → forward → guard → relay

``handle`` decides; ``deliver`` forwards what was allowed. Stages return values
(``Rejection``, ``Decision``); only broken infrastructure raises, and each such
exception is turned into its answer right where it can happen.

Each stage's time goes to ``gatehold_stage_seconds{stage=…}`` through ``_lap``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import IO

from aiohttp import web

from gateway.audit import event_entry
from gateway.bodies import Body
from gateway.context import GATEWAY, Gateway
from gateway.errors import StoreUnavailable, UpstreamFailed
from gateway.forward import BodyTooLarge, Refused
from gateway.metrics import LoopHistogram
from gateway.model import (
    Admitted,
    Anonymous,
    AuditReceipt,
    Decision,
    MatchResult,
    Principal,
    Reason,
    Rejection,
    ResolvedRef,
    RouteMatch,
)
from gateway.override import Prepared, with_override
from gateway.policy import refused


async def handle(request: web.Request) -> web.StreamResponse:
    """Guard one request end to end."""
    gw = request.app[GATEWAY]
    stage = gw.metrics.stages
    started = time.monotonic()
    lap = time.perf_counter()
    admitted = gw.ingress.admit(request)
    lap = _lap(stage.ingress, lap)
    if isinstance(admitted, Rejection):
        return await gw.reject_unadmitted(request, admitted)
    principal = await gw.identity.resolve(request)
    lap = _lap(stage.identity, lap)
    if not _is_websocket(request):
        busy = gw.in_flight.enter(request, principal, admitted)
        if busy is not None:
            return _refuse_busy(gw, request, admitted, principal, busy)
    prepared = await gw.overrides.prepare(request, admitted.target, principal)
    method = prepared.method if isinstance(prepared, Prepared) else request.method
    match = gw.router.match(admitted.target, method)
    lap = _lap(stage.route, lap)
    route = match.route.name if isinstance(match, RouteMatch) else ""
    decision, objects = await _decide(gw, request, admitted, principal, match, prepared)
    lap = _lap(stage.decide, lap)
    try:
        receipt = await gw.audit.begin(
            with_override(
                prepared,
                admitted=admitted,
                method=method,
                user_agent=request.headers.get("User-Agent", ""),
                principal=principal,
                match=match,
                decision=decision,
                upstream=match.route.upstream if isinstance(match, RouteMatch) else "",
            )
        )
    except StoreUnavailable:
        refusal = Rejection(Reason.AUDIT_UNAVAILABLE)
        return gw.refuse(request, admitted, refusal, receipt=None, started=started, route=route)
    _lap(stage.audit_wait, lap)
    if not decision.allowed or not isinstance(match, RouteMatch):
        await asyncio.sleep(gw.observe_denial(principal, decision, admitted))
        return gw.refuse(request, admitted, decision, receipt=receipt, started=started, route=route)
    return await deliver(
        gw, request, admitted, principal, match, decision, objects.body, receipt, arrived=started
    )


async def deliver(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Principal | Anonymous | Rejection,
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
            gw.metrics.decided(name, "allow", decision.reason.value, time.monotonic() - arrived)
            return response
        reply = await gw.forward.send(
            request, admitted=admitted, principal=caller, match=match, decision=decision, body=body
        )
    except UpstreamFailed as failure:
        reason = Reason.UPSTREAM_TIMEOUT if failure.timeout else Reason.UPSTREAM_REFUSED
        return gw.refuse(
            request, admitted, Rejection(reason), receipt=receipt, started=started, route=name
        )
    except BodyTooLarge:
        refusal = Rejection(Reason.BODY_TOO_LARGE, "the request body exceeds this route's limit")
        return gw.refuse(request, admitted, refusal, receipt=receipt, started=started, route=name)
    except Refused as refused:
        return gw.refuse(
            request, admitted, refused.rejection, receipt=receipt, started=started, route=name
        )
    lap = _lap(stage.upstream, lap)
    checked = await gw.guard.check(reply, match=match, decision=decision)
    if isinstance(checked, Rejection):
        return gw.refuse(request, admitted, checked, receipt=receipt, started=started, route=name)
    await gw.learn_created(match, decision, checked)  # before the creator can ask for it
    response, outcome = await gw.forward.relay(request, checked, started=started)
    gw.audit.finish(receipt, outcome)
    _lap(stage.response, lap)
    gw.metrics.decided(name, "allow", decision.reason.value, time.monotonic() - arrived)
    return response


def _refuse_busy(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Principal | Anonymous | Rejection,
    busy: Rejection,
) -> web.StreamResponse:
    """429 for a caller with too many requests in progress; audited, nothing forwarded."""
    gw.audit.record(
        event_entry(
            "request",
            actor=principal.email if isinstance(principal, Principal) else "anonymous",
            request_id=admitted.request_id,
            decision="deny",
            reason=busy.reason.value,
            method=request.method,
            path=admitted.target.path,
            client=admitted.client_ip,
        )
    )
    return gw.refuse(request, admitted, busy, receipt=None)


def _lap(stage: LoopHistogram, since: float) -> float:
    """Observe the time since ``since`` for ``stage``; returns now, the next stage's start."""
    now = time.perf_counter()
    stage.observe(now - since)
    return now


async def _decide(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Principal | Anonymous | Rejection,
    match: MatchResult,
    prepared: Prepared | Rejection,
) -> tuple[Decision, _Objects]:
    """Objects → ownership → decide, with every refusal that needs no owner made first.

    A body that cannot be read as the app will read it is refused whatever it names.
    ``Policy.screen`` then judges the route, the caller's roles and the enumeration
    block; only a request it cannot settle has its ids read and their owners looked up.
    """
    if isinstance(prepared, Rejection):
        return refused(prepared), _UNREAD
    read = prepared.body
    websocket, blocked = _is_websocket(request), gw.enumeration.blocked(principal)
    early = gw.policy.screen(
        principal=principal,
        match=match,
        method=prepared.method,
        websocket=websocket,
        blocked=blocked,
    )
    if early is not None:
        return early, _Objects((), read.forwardable() if read else None)
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

    __slots__ = ("body", "owners")

    def __init__(
        self, owners: Sequence[ResolvedRef] | Rejection, body: bytes | IO[bytes] | None
    ) -> None:
        self.owners = owners
        self.body = body


_UNREAD = _Objects((), None)


async def _resolve_objects(
    gw: Gateway,
    request: web.Request,
    admitted: Admitted,
    principal: Principal | Anonymous | Rejection,
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
        return _Objects((), read.forwardable() if read else None)
    if not isinstance(principal, Principal):
        return _Objects((), None)
    extracted = await gw.objects.extract(request, match, query=admitted.target.query, body=read)
    if isinstance(extracted, Rejection):
        return _Objects(extracted, None)
    owners = await gw.ownership.resolve(extracted.refs, upstream=match.route.upstream)
    forwarded = extracted.body or read
    return _Objects(owners, forwarded.forwardable() if forwarded else None)


def _is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"
