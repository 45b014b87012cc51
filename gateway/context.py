"""The gateway object: every stage of one running app, plus the few steps that glue
a verdict to its answer (render, audit the outcome, count it).

Only ``app.py`` builds it; the pipeline reaches it through the typed ``GATEWAY`` key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from gateway.audit import AuditWriter, event_entry
from gateway.auth.api_clients import ApiKeys, BearerTokens
from gateway.auth.sessions import SessionManager
from gateway.enumeration import EnumerationGuard
from gateway.forward import Forwarder, UpstreamReply
from gateway.guard import ResponseGuard
from gateway.identity import COOKIE_NAME, Identity
from gateway.inflight import InFlight
from gateway.ingress import Ingress, canonicalize, new_request_id
from gateway.metrics import Metrics
from gateway.model import (
    Admitted,
    AuditReceipt,
    Decision,
    IdSource,
    Outcome,
    Principal,
    Reason,
    Rejection,
    RouteMatch,
    Target,
)
from gateway.objects import ObjectExtractor
from gateway.ownership import Ownership
from gateway.policy import Policy
from gateway.responses import Renderer
from gateway.routing import Router


@dataclass
class Gateway:
    """The stages of the pipeline, built once by ``app.build_app``."""

    ingress: Ingress
    identity: Identity
    router: Router
    objects: ObjectExtractor
    ownership: Ownership
    policy: Policy
    enumeration: EnumerationGuard
    audit: AuditWriter
    forward: Forwarder
    guard: ResponseGuard
    renderer: Renderer
    sessions: SessionManager
    api_keys: ApiKeys
    bearer: BearerTokens | None = None
    metrics: Metrics = field(default_factory=Metrics)
    cookie_secure: bool = True
    clock: Callable[[], float] = time.time
    in_flight: InFlight = field(default_factory=lambda: InFlight(64))

    def reject_unadmitted(self, request: web.BaseRequest, rejection: Rejection) -> web.Response:
        """Answer a request ingress refused; it never had a canonical target to route."""
        request_id = new_request_id()
        self.audit.record(
            event_entry(
                "rejected",
                actor="anonymous",
                request_id=request_id,
                reason=rejection.reason.value,
                method=request.method,
                raw_target=request.raw_path[:1024],
                client=request.remote or "",
            )
        )
        self.metrics.decided("", "deny", rejection.reason.value, None)
        problem = self.renderer.problem(
            rejection.reason, detail=rejection.detail, request_id=request_id, target="/"
        )
        return self.renderer.render(request, problem)

    def refuse(
        self,
        request: web.BaseRequest,
        admitted: Admitted,
        verdict: Decision | Rejection,
        *,
        receipt: AuditReceipt | None,
        started: float | None = None,
        route: str = "",
    ) -> web.Response:
        """Render a denial or failure and record its outcome against the audit entry."""
        detail = verdict.detail if isinstance(verdict, Rejection) else ""
        problem = self.renderer.problem(
            verdict.reason,
            detail=detail or _DEFAULT_DETAIL,
            request_id=admitted.request_id,
            target=admitted.target.raw,
        )
        response = self.renderer.render(request, problem)
        if verdict.reason is Reason.SESSION_INVALID:
            response.del_cookie(COOKIE_NAME, path="/", secure=self.cookie_secure, httponly=True)
        elapsed = 0.0 if started is None else time.monotonic() - started
        if receipt is not None:
            size = len(response.body) if isinstance(response.body, bytes) else 0
            outcome = Outcome(response.status, size, elapsed * 1000)
            self.audit.finish(receipt, outcome, reason=verdict.reason.value)
        self.metrics.decided(route, "deny", verdict.reason.value, elapsed)
        return response

    def observe_denial(self, principal: object, decision: Decision, admitted: Admitted) -> float:
        """Feed the enumeration defence; returns the slow-down delay in seconds."""
        verdict = self.enumeration.observe(principal, decision)
        if verdict.newly_blocked and isinstance(principal, Principal):
            self.metrics.enumeration_alerts.inc()
            self.audit.record(
                event_entry(
                    "enumeration-blocked",
                    actor=principal.email,
                    request_id=admitted.request_id,
                    distinct_ids=verdict.distinct_ids,
                    path=admitted.target.path,
                )
            )
        return verdict.delay

    async def learn_created(
        self, match: RouteMatch, decision: Decision, reply: UpstreamReply
    ) -> None:
        """Register the owner of an object created through the gateway (``learn_on_create``).

        A ``201`` whose ``Location`` names an object route of a registry resource
        records the creating request's tenant as the owner.
        """
        location = reply.headers.get("Location")
        if reply.status != 201 or not location or decision.tenant is None:
            return
        target = canonicalize(urlsplit(location).path or "/")
        if not isinstance(target, Target):
            return
        created = self.router.match(target, "GET")
        if not isinstance(created, RouteMatch) or not created.route.ids:
            return
        spec = created.route.ids[0]
        if spec.source is IdSource.PATH and self.ownership.learns_on_create(spec.type):
            await self.ownership.learn_created(
                resource_type=spec.type,
                object_id=created.params[spec.key],
                tenant=decision.tenant,
            )


_DEFAULT_DETAIL = "The request was not allowed."

GATEWAY = web.AppKey("gateway", Gateway)
