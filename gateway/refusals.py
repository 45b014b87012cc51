"""The one exit for refusals: every "no" the gateway answers itself goes out here.

``refuse`` renders a denial or failure of a request that has an audit entry (or had
none because the store was down) and records its outcome; ``reject_unadmitted``
answers a request ingress refused before it had a canonical target, and
``reject_unread`` one the HTTP parser refused; ``unexpected_error`` is the safety
net's answer (I9); ``observe_denial`` feeds the enumeration defence with each denial.
The one refusal made elsewhere is the connection cap's (``server.py``): it answers on
the raw transport before any request exists.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from gateway.audit import event_entry
from gateway.context import Gateway
from gateway.identity import COOKIE_NAME
from gateway.ingress import new_request_id
from gateway.model import (
    Admitted,
    AuditReceipt,
    Decision,
    GuardReport,
    IncomingRequest,
    Outcome,
    Principal,
    Reason,
    Rejection,
)

DEFAULT_DETAIL = "The request was not allowed."
CALLER_LOOKUP_SECONDS = 1.0
"""Longest wait for the caller of a request refused at ingress (audit detail only)."""


def refuse(
    gw: Gateway,
    request: web.BaseRequest,
    admitted: Admitted,
    verdict: Decision | Rejection,
    *,
    receipt: AuditReceipt | None,
    started: float | None = None,
    route: str = "",
    guard: GuardReport | None = None,
) -> web.Response:
    """Render a denial or failure and record its outcome against the audit entry
    (with what the response guard found, when it refused the answer)."""
    detail = verdict.detail
    problem = gw.renderer.problem(
        verdict.reason,
        detail=detail or DEFAULT_DETAIL,
        request_id=admitted.request_id,
        target=admitted.target.raw,
        tenant=verdict.tenant if isinstance(verdict, Decision) else None,
    )
    response = gw.renderer.render(request, problem)
    if verdict.reason is Reason.SESSION_INVALID:
        response.del_cookie(COOKIE_NAME, path="/", secure=gw.cookie_secure, httponly=True)
    elapsed = 0.0 if started is None else time.monotonic() - started
    if receipt is not None:
        size = len(response.body) if isinstance(response.body, bytes) else 0
        outcome = Outcome(response.status, size, elapsed * 1000, guard=guard)
        gw.audit.finish(receipt, outcome, reason=verdict.reason.value)
    gw.metrics.decided(route, "deny", verdict.reason.value, elapsed)
    return response


async def reject_unadmitted(
    gw: Gateway, request: web.BaseRequest, rejection: Rejection
) -> web.Response:
    """Answer a request ingress refused; it never had a canonical target to route.

    The audit row names the caller when a credential came with the request.
    """
    actor, identity = await caller_of(gw, request)
    return reject_unread(
        gw,
        request,
        rejection,
        actor=actor,
        method=request.method,
        raw_target=request.raw_path[:1024],
        client=gw.ingress.client_address(request),
        **identity,
    )


def reject_unread(
    gw: Gateway, request: web.BaseRequest, rejection: Rejection, *, actor: str, **data: Any
) -> web.Response:
    """Answer a request refused before it could be routed: a ``rejected`` audit event
    (with ``data``), the metric, and the problem page under a fresh request id.

    Also the answer to requests aiohttp's parser refuses (``server.py``), which have no
    target to speak of: the page's sign-in link leads back to ``/``.
    """
    request_id = new_request_id()
    gw.audit.record(
        event_entry(
            "rejected", actor=actor, request_id=request_id, reason=rejection.reason.value, **data
        )
    )
    gw.metrics.decided("", "deny", rejection.reason.value, None)
    problem = gw.renderer.problem(
        rejection.reason, detail=rejection.detail, request_id=request_id, target="/"
    )
    return gw.renderer.render(request, problem)


def unexpected_error(gw: Gateway, request: web.BaseRequest, request_id: str) -> web.Response:
    """The answer to an unexpected exception: a problem with a request id, never a trace."""
    problem = gw.renderer.problem(
        Reason.INTERNAL_ERROR,
        detail="The gateway hit an unexpected error. Nothing was forwarded past it.",
        request_id=request_id,
        target="/",
    )
    return gw.renderer.render(request, problem)


async def caller_of(gw: Gateway, request: IncomingRequest) -> tuple[str, dict[str, str]]:
    """Who sent a refused request, for its audit row only: ``(actor, extra data)``.

    Sessions and API keys are cached, so this is usually a dictionary lookup. It is
    bounded in time and never raises: an audit detail must not change the answer.
    """
    try:
        async with asyncio.timeout(CALLER_LOOKUP_SECONDS):
            found = await gw.identity.resolve(request)
    except Exception:  # any failure leaves the caller unknown
        return "anonymous", {"identity": "unresolved"}
    if isinstance(found, Principal):
        return found.email, {}
    if isinstance(found, Rejection):
        return "anonymous", {"identity": found.reason.value}
    return "anonymous", {}


async def observe_denial(
    gw: Gateway, principal: object, decision: Decision, admitted: Admitted
) -> float:
    """Feed the enumeration defence; returns the slow-down delay in seconds."""
    verdict = await gw.enumeration.observe(principal, decision)
    if verdict.newly_blocked and isinstance(principal, Principal):
        gw.metrics.enumeration_alerts.inc()
        gw.audit.record(
            event_entry(
                "enumeration-blocked",
                actor=principal.email,
                request_id=admitted.request_id,
                distinct_ids=verdict.distinct_ids,
                path=admitted.target.path,
            )
        )
    return verdict.delay
