"""The gateway object: every stage of one running app, plus the few steps that glue
a verdict to its answer (render, audit the outcome, count it).

Only ``app.py`` builds it; the pipeline reaches it through the typed ``GATEWAY`` key.
"""

from __future__ import annotations

import asyncio
import logging
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
from gateway.override import MethodOverrides
from gateway.ownership import Ownership
from gateway.policy import Policy
from gateway.responses import Renderer
from gateway.routing import Router

log = logging.getLogger("gatehold.ownership")


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
    overrides: MethodOverrides
    bearer: BearerTokens | None = None
    metrics: Metrics = field(default_factory=Metrics)
    cookie_secure: bool = True
    clock: Callable[[], float] = time.time
    public_url: str = ""
    """The gateway's own origin: a create's absolute ``Location`` must point here."""
    in_flight: InFlight = field(default_factory=lambda: InFlight(64))

    async def reject_unadmitted(
        self, request: web.BaseRequest, rejection: Rejection
    ) -> web.Response:
        """Answer a request ingress refused; it never had a canonical target to route.

        The audit row names the caller when a credential came with the request.
        """
        request_id = new_request_id()
        actor, identity = await self._caller_of(request)
        self.audit.record(
            event_entry(
                "rejected",
                actor=actor,
                request_id=request_id,
                reason=rejection.reason.value,
                method=request.method,
                raw_target=request.raw_path[:1024],
                client=self.ingress.client_address(request),
                **identity,
            )
        )
        self.metrics.decided("", "deny", rejection.reason.value, None)
        problem = self.renderer.problem(
            rejection.reason, detail=rejection.detail, request_id=request_id, target="/"
        )
        return self.renderer.render(request, problem)

    async def _caller_of(self, request: web.BaseRequest) -> tuple[str, dict[str, str]]:
        """Who sent a refused request, for its audit row only: ``(actor, extra data)``.

        Sessions and API keys are cached, so this is usually a dictionary lookup. It is
        bounded in time and never raises: an audit detail must not change the answer.
        """
        try:
            async with asyncio.timeout(CALLER_LOOKUP_SECONDS):
                found = await self.identity.resolve(request)
        except Exception:  # any failure leaves the caller unknown
            return "anonymous", {"identity": "unresolved"}
        if isinstance(found, Principal):
            return found.email, {}
        if isinstance(found, Rejection):
            return "anonymous", {"identity": found.reason.value}
        return "anonymous", {}

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

        Only a route that declares ``creates: <resource>`` teaches owners, and only from
        its ``201`` whose same-origin ``Location`` names that resource's object route on
        the same upstream. The creating request's tenant becomes the owner of an id that
        has none yet; an id that has an owner keeps it.
        """
        resource = match.route.creates
        location = reply.headers.get("Location")
        if resource is None or reply.status != 201 or not location or decision.tenant is None:
            return
        object_id = self._created_id(location, resource, upstream=match.route.upstream)
        if object_id is None:
            log.info("a %s create answered a Location naming no new %s", match.route.name, resource)
            return
        try:
            learned = await self.ownership.learn_created(
                resource_type=resource, object_id=object_id, tenant=decision.tenant
            )
        except Exception:  # the object exists upstream; its creator still gets the answer
            log.exception("could not register the owner of %s %s", resource, object_id)
            return
        if not learned:
            log.warning("%s %s already has an owner; a create did not move it", resource, object_id)

    def _created_id(self, location: str, resource: str, *, upstream: str) -> str | None:
        """The id a create's ``Location`` names, if it is an object of ``resource`` here."""
        parts = urlsplit(location)
        if (parts.scheme or parts.netloc) and (
            f"{parts.scheme}://{parts.netloc}".lower() != self.public_url.lower().rstrip("/")
        ):
            return None  # another origin: not an object behind this gateway
        target = canonicalize(parts.path or "/")
        if not isinstance(target, Target):
            return None
        created = self.router.match(target, "GET")
        if not isinstance(created, RouteMatch) or created.route.upstream != upstream:
            return None
        spec = created.route.ids[0] if created.route.ids else None
        if spec is None or spec.source is not IdSource.PATH or spec.type != resource:
            return None
        return created.params[spec.key]


_DEFAULT_DETAIL = "The request was not allowed."
CALLER_LOOKUP_SECONDS = 1.0
"""Longest wait for the caller of a request refused at ingress (audit detail only)."""

GATEWAY = web.AppKey("gateway", Gateway)
