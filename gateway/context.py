"""The gateway object: every stage of one running app and the settings they share.

A plain container, no logic: the pipeline (``pipeline.py``), its refusals
(``refusals.py``) and owner learning (``created.py``) act on it. ``Deciders`` is the
part that deciding needs (``pipeline.decide``); ``rules simulate`` builds only that,
so it opens no upstream pool, audit writer or signing key. Only ``app.py`` builds a
``Gateway``; the pipeline reaches it through the typed ``GATEWAY`` key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.audit import AuditWriter
from gateway.auth.api_clients import ApiKeys, BearerTokens
from gateway.auth.sessions import SessionManager
from gateway.enumeration import EnumerationGuard
from gateway.forward import Forwarder
from gateway.guard import ResponseGuard
from gateway.identity import Identity
from gateway.inflight import InFlight
from gateway.ingress import Ingress
from gateway.metrics import Metrics
from gateway.objects import ObjectExtractor
from gateway.override import MethodOverrides
from gateway.ownership import Ownership
from gateway.policy import Policy
from gateway.responses import Renderer
from gateway.routing import Router
from gateway.uploads import UploadInspector


@dataclass(kw_only=True)
class Deciders:
    """The stages that decide a request: ingress to policy, nothing that forwards."""

    ingress: Ingress
    identity: Identity
    router: Router
    objects: ObjectExtractor
    ownership: Ownership
    policy: Policy
    enumeration: EnumerationGuard
    overrides: MethodOverrides
    sessions: SessionManager
    api_keys: ApiKeys
    bearer: BearerTokens | None = None
    uploads: UploadInspector = field(default_factory=UploadInspector)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time


@dataclass(kw_only=True)
class Gateway(Deciders):
    """The stages of the pipeline, built once by ``app.build_app``."""

    audit: AuditWriter
    forward: Forwarder
    guard: ResponseGuard
    renderer: Renderer
    cookie_secure: bool = True
    public_url: str = ""
    """The gateway's own origin: a create's absolute ``Location`` must point here."""
    in_flight: InFlight = field(default_factory=lambda: InFlight(64))


GATEWAY = web.AppKey("gateway", Gateway)
