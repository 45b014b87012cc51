"""Composition root: the only place that builds stages and wires them together."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui import mount_admin_ui
from gateway.access_pages import AccessPages, mount_access
from gateway.admin.parts import ServiceParts
from gateway.api.routes import admin_api
from gateway.assertion import AssertionSigner
from gateway.audit import writer_for
from gateway.auth.handlers import AUTH_PAGES, AuthPages, mount_auth
from gateway.auth.keys import (
    CSRF_KEY,
    OIDC_FLOW_KEY,
    TOTP_KEY,
    CsrfTokens,
    load_or_create_secret,
)
from gateway.auth.magic_link import MagicLinks
from gateway.auth.mail_outbox import build_outbox
from gateway.auth.oidc import FlowSeal, OidcLogins
from gateway.auth.password_pages import mount_passwords
from gateway.auth.password_policy import PasswordPolicy
from gateway.auth.passwords import PasswordHashing, Passwords, PasswordThrottle
from gateway.auth.recovery_codes import RecoveryCodes
from gateway.auth.sign_in_limits import SignInLimits, limit_key
from gateway.auth.step_up import mount_step_up
from gateway.auth.totp import Authenticators, SecretSeal
from gateway.auth.totp_pages import TotpPages, mount_totp
from gateway.config.settings import Settings
from gateway.context import GATEWAY, Deciders, Gateway
from gateway.deciders import build_deciders, rule_deciders
from gateway.errors import StoreUnavailable
from gateway.forward import Forwarder, ForwardLimits
from gateway.forward_auth import ForwardAuth, mount_forward_auth
from gateway.guard import ResponseGuard
from gateway.inflight import InFlight
from gateway.ingress import canonicalize, new_request_id
from gateway.live import LIVE, LiveRules
from gateway.metrics import Metrics
from gateway.model import Membership, Reason, Rejection, RuleSet, Target
from gateway.observe import observing_now, warn_observing
from gateway.observe_trail import ObserveTrail
from gateway.pipeline import handle
from gateway.refusals import reject_unadmitted, reject_unread, unexpected_error
from gateway.registry_sync import RegistryFollower
from gateway.responses import PIPELINE_ROUTE, Renderer, mark_own_page
from gateway.server import CONNECTIONS, HEAD_LIMITS, ConnectionGuard
from gateway.share_pages import SharePages, mount_shares
from gateway.sockets import OpenSockets
from gateway.store import share_links as share_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.notify import ChangeFeed

log = logging.getLogger("gatehold")

PACKAGE_DIR = Path(__file__).parent
ENGINE = web.AppKey("engine", AsyncEngine)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
FEED = web.AppKey("change_feed", ChangeFeed)
"""The process's one LISTEN connection: what other replicas changed (``store/notify.py``)."""
REGISTRY_FOLLOWER = web.AppKey("registry_follower", RegistryFollower)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def templates() -> jinja2.Environment:
    """The HTML templates of the gateway's own pages (autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
        autoescape=True,
        enable_async=False,
    )


def with_rules(
    gateway: Gateway, settings: Settings, ruleset: RuleSet, engine: AsyncEngine
) -> Gateway:
    """A gateway for ``ruleset``: new rule stages and pools, every other stage shared."""
    forward = gateway.forward
    warn_observing(ruleset.routes, gateway.clock())
    return replace(
        gateway,
        **rule_deciders(settings, ruleset, engine, resolver_calls=gateway.metrics.resolver_calls),
        forward=_forwarder(settings, ruleset, forward.signer, forward.sockets),
    )


def build_gateway(
    settings: Settings, ruleset: RuleSet, engine: AsyncEngine, pages: jinja2.Environment
) -> Gateway:
    """Every stage of the pipeline, configured once (creates the signing key on first use)."""
    metrics = Metrics()
    deciders = build_deciders(settings, ruleset, engine, resolver_calls=metrics.resolver_calls)
    metrics.watch_sessions(deciders.sessions.cached_sessions)
    signer = AssertionSigner.load_or_create(
        settings.key_path,
        issuer=settings.server.public_url,
        ttl_seconds=settings.assertion_ttl,
        reuse_seconds=settings.assertion_reuse,
    )
    audit = writer_for(settings, engine)
    metrics.watch_audit(audit)
    limits = settings.limits
    sockets = OpenSockets(audit)
    deciders.sessions.revocations.subscribe(sockets.revoked)
    deciders.api_keys.revocations.subscribe(sockets.revoked)
    forward = _forwarder(settings, ruleset, signer, sockets)
    stages = {f.name: getattr(deciders, f.name) for f in fields(Deciders)}
    stages["metrics"] = metrics
    return Gateway(
        **stages,
        audit=audit,
        forward=forward,
        guard=ResponseGuard(),
        renderer=Renderer(
            templates=pages, foreign_object_status=settings.policy.foreign_object_status
        ),
        cookie_secure=settings.sessions.cookie_secure,
        public_url=settings.server.public_url,
        in_flight=InFlight(
            limits.in_flight_per_principal,
            per_client=limits.in_flight_per_client,
            trusted_proxies=settings.server.trusted_proxies,
        ),
    )


def _forwarder(
    settings: Settings, ruleset: RuleSet, signer: AssertionSigner, sockets: OpenSockets | None
) -> Forwarder:
    """The forwarder of ``ruleset``'s upstreams (its pools open in ``start``)."""
    limits = settings.limits
    return Forwarder(
        ruleset.upstreams,
        public_url=settings.server.public_url,
        signer=signer,
        header_strip=settings.headers.build(),
        limits=ForwardLimits(
            upstream_pool=limits.upstream_pool,
            pool_acquire_timeout=limits.pool_acquire_timeout,
            body_idle_timeout=limits.body_idle_timeout,
            request_total_timeout=limits.request_total_timeout,
            body_buffer=limits.body_buffer,
            websocket_max_lifetime=limits.websocket_max_lifetime,
            websocket_origins=tuple(limits.websocket_origins),
        ),
        sockets=sockets,
    )


def build_auth_pages(
    settings: Settings, gateway: Gateway, engine: AsyncEngine, pages: jinja2.Environment
) -> AuthPages:
    """The sign-in pages: magic links, OIDC providers, logout, "your sessions"."""
    keys = settings.data_path / "keys"
    csrf_secret = load_or_create_secret(keys / CSRF_KEY)
    magic_links = MagicLinks(
        engine=engine,
        outbox=build_outbox(settings, engine, gateway.audit),
        audit=gateway.audit,
        settings=settings.auth.magic_link,
        ttl=settings.magic_link_ttl,
        public_url=settings.server.public_url,
        sender=settings.mail.sender,
        limits=SignInLimits(
            engine,
            settings.auth.magic_link,
            key=limit_key(csrf_secret),
            audit=gateway.audit,
        ),
        guests=partial(share_store.live_for, engine),
    )
    return AuthPages(
        templates=pages,
        identity=gateway.identity,
        sessions=gateway.sessions,
        magic_links=magic_links,
        csrf=CsrfTokens(csrf_secret),
        audit=gateway.audit,
        cookie_secure=settings.sessions.cookie_secure,
        client_address=gateway.ingress.client_address,
        metrics=gateway.metrics,
        mfa=settings.auth.mfa,
        oidc=OidcLogins(
            settings.auth.oidc,
            engine=engine,
            seal=FlowSeal(load_or_create_secret(keys / OIDC_FLOW_KEY)),
            public_url=settings.server.public_url,
        )
        if settings.auth.oidc
        else None,
        passwords=_passwords(settings, engine, key=limit_key(csrf_secret)),
    )


def _passwords(settings: Settings, engine: AsyncEngine, *, key: bytes) -> Passwords | None:
    """Local passwords, when turned on (making the dummy hash costs one Argon2 hash)."""
    chosen = settings.auth.passwords
    if not chosen.enabled:
        return None
    return Passwords(
        engine,
        chosen,
        hashing=PasswordHashing(chosen.argon2),
        throttle=PasswordThrottle(engine, chosen, key=key),
        policy=PasswordPolicy(chosen, public_url=settings.server.public_url),
        public_url=settings.server.public_url,
    )


def build_totp_pages(settings: Settings, engine: AsyncEngine, pages: AuthPages) -> TotpPages:
    """Authenticator apps and recovery codes; the secrets sealed with ``keys/totp.key``."""
    seal = SecretSeal(load_or_create_secret(settings.data_path / "keys" / TOTP_KEY))
    return TotpPages(
        pages,
        Authenticators(engine, seal, issuer=settings.auth.totp.issuer, clock=pages.clock),
        RecoveryCodes(engine, clock=pages.clock),
        public_url=settings.server.public_url,
        enrolment=settings.auth.totp.enabled,
    )


def build_app(settings: Settings, ruleset: RuleSet) -> web.Application:
    """The gateway's aiohttp application: internal pages, then one catch-all pipeline route."""
    engine = open_engine(
        settings.store_dsn,
        statement_timeout=settings.store_statement_timeout,
        lock_timeout=settings.store_lock_timeout,
    )
    pages = templates()
    gateway = build_gateway(settings, ruleset, engine, pages)
    # The keep-alive timeout is also the deadline for a request's headers: aiohttp
    # closes a connection that has not delivered a whole request head by then.
    app = web.Application(
        middlewares=[guarded],
        handler_args={
            "keepalive_timeout": settings.limits.keepalive_timeout,
            # An unread body after a refusal is drained this long at most, then cut.
            "lingering_time": 2.0,
            **HEAD_LIMITS,
        },
    )
    app[GATEWAY] = gateway
    trail = ObserveTrail(gateway.audit, clock=lambda: live.current.clock())
    live = app[LIVE] = LiveRules(gateway, trail=trail)
    warn_observing(ruleset.routes, gateway.clock())
    gateway.metrics.watch_observing(lambda: observing_now(live.current))
    app[TEMPLATES] = pages
    app[ENGINE] = engine
    feed = app[FEED] = ChangeFeed(engine, enabled=settings.store.listen)
    gateway.sessions.follow(feed)
    gateway.api_keys.follow(feed)
    gateway.enumeration.follow(feed)
    app[REGISTRY_FOLLOWER] = RegistryFollower(
        engine, feed, lambda kind, oid: live.current.ownership.invalidate(kind, oid)
    )
    app[CONNECTIONS] = ConnectionGuard(
        per_client=settings.limits.connections_per_client,
        trusted_proxies=settings.server.trusted_proxies,
    )
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(partial(_observe_trail, ruleset))  # once the audit writer runs
    app.on_response_prepare.append(mark_own_page)
    app.router.add_get("/.gatehold/health", health)
    app.router.add_get("/.gatehold/jwks.json", jwks)
    auth_pages = build_auth_pages(settings, gateway, engine, pages)
    auth_pages.mfa_required = partial(_mfa_required, live)
    mount_auth(app, auth_pages)
    if settings.auth.passkeys.enabled:
        # Imported only when turned on: py_webauthn and its CBOR and ASN.1 parsers
        # take about 5 MiB of every process that imports them.
        from gateway.auth.passkey_pages import mount_passkeys
        from gateway.auth.passkeys import Passkeys

        passkeys = Passkeys(
            settings.auth.passkeys,
            engine=engine,
            public_url=settings.server.public_url,
            clock=auth_pages.clock,
        )
        mount_passkeys(app, auth_pages, passkeys)
    mount_totp(app, build_totp_pages(settings, engine, auth_pages))
    mount_step_up(app, auth_pages)
    mount_passwords(app, auth_pages)
    mount_access(
        app,
        AccessPages(
            auth_pages,
            engine,
            roles=lambda: live.current.policy.roles,
            limits=settings.access_requests,
        ),
    )
    mount_shares(app, SharePages(auth_pages))
    links = auth_pages.magic_links
    parts = ServiceParts(settings, mailer=links.mailer, send_invite=links.invite)
    admin_api(auth_pages.csrf, parts).mount(app)
    mount_admin_ui(app, auth_pages.csrf, parts)
    app.router.add_static("/.gatehold/static/", PACKAGE_DIR / "static", name="static")
    trusted, strip = settings.server.trusted_proxies, settings.headers.build()
    mount_forward_auth(app, ForwardAuth(settings.forward_auth, trusted, strip))
    app.router.add_route("*", "/{tail:.*}", handle, name=PIPELINE_ROUTE)
    return app


def _mfa_required(live: LiveRules, memberships: Sequence[Membership]) -> bool:
    """Whether the rules in force now (reloads included) ask these memberships for a
    second factor at sign-in."""
    return live.current.policy.requires_mfa(memberships)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open the store, the audit writer and the upstream pools; close them in reverse.

    Each stage is registered for closing as soon as it has started, so when one fails
    to start, every stage already started is closed before the error goes on.
    """
    gateway, engine, pages = app[GATEWAY], app[ENGINE], app[AUTH_PAGES]
    async with AsyncExitStack() as opened:
        opened.push_async_callback(engine.dispose)
        await migrate(engine)
        first: tuple[_Stage | None, ...] = (
            app[FEED],
            gateway.audit,
            gateway.sessions,
            gateway.api_keys,
            gateway.bearer,
            gateway.enumeration,
        )
        for stage in first:
            await _open(opened, stage)
        opened.push_async_callback(pages.magic_links.close)
        await _open(opened, pages.magic_links.outbox)  # mail waiting from before goes out
        for stage in (gateway.ownership, app[REGISTRY_FOLLOWER], gateway.forward, pages.oidc):
            await _open(opened, stage)
        opened.push_async_callback(app[LIVE].close)  # the versions reloads started
        yield


async def _observe_trail(ruleset: RuleSet, app: web.Application) -> AsyncIterator[None]:
    """Audit the observe windows of the rules the process starts with; stop watching them
    at the end."""
    trail = app[LIVE].trail
    if trail is None:
        yield
        return
    trail.loaded(ruleset.routes, source=ruleset.source, digest=ruleset.digest)
    try:
        yield
    finally:
        trail.close()


class _Stage(Protocol):
    """A stage with background work or connections: started before serving, closed after."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...


async def _open(opened: AsyncExitStack, stage: _Stage | None) -> None:
    """Start ``stage`` (if configured) and have ``opened`` close it."""
    if stage is not None:
        await stage.start()
        opened.push_async_callback(stage.close)


@web.middleware
async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The safety net for every request (I9), and one address per gateway page (I2).

    One middleware rather than one per rule: aiohttp wraps the handler once per
    middleware on every request, and nearly every request is the pipeline's.
    """
    try:
        if request.match_info.route.name != PIPELINE_ROUTE:
            refusal = await _refuse_non_canonical(request)
            if refusal is not None:
                return refusal
        return await handler(request)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except StoreUnavailable:
        return _store_unavailable(request)
    except Exception:
        return _unexpected_error(request)
    finally:
        request.app[GATEWAY].in_flight.leave(request)


async def _refuse_non_canonical(request: web.Request) -> web.StreamResponse | None:
    """A 400 for a gateway page asked for by a second spelling, else ``None``.

    aiohttp routes on the decoded path; without this, ``/%2Egatehold/...`` would reach
    the gateway's own pages. The catch-all pipeline canonicalizes on its own.
    """
    target = canonicalize(request.raw_path)
    if isinstance(target, Target) and target.path == request.raw_path.split("?", 1)[0]:
        return None
    return await reject_unadmitted(
        request.app[GATEWAY],
        request,
        Rejection(Reason.TARGET_AMBIGUOUS, "use the canonical address"),
    )


def _store_unavailable(request: web.Request) -> web.StreamResponse:
    """503 with ``Retry-After`` for a gateway page that needed the store while it was
    unreachable: a known outage, not a bug (logged by whoever noticed it first)."""
    return reject_unread(
        request.app[GATEWAY],
        request,
        Rejection(Reason.STORE_UNAVAILABLE, "The service is briefly unavailable; try again."),
        actor="anonymous",
        method=request.method,
        path=request.raw_path.split("?", 1)[0][:1024],
    )


def _unexpected_error(request: web.Request) -> web.StreamResponse:
    """A problem answer with a request id for an unexpected exception, never a trace."""
    request_id = new_request_id()
    log.exception("unhandled error", extra={"request_id": request_id})
    return unexpected_error(request.app[GATEWAY], request, request_id)


async def health(request: web.Request) -> web.Response:
    """Liveness for load balancers and the container HEALTHCHECK."""
    return web.json_response({"status": "ok"})


async def jwks(request: web.Request) -> web.Response:
    """Public keys upstreams use to verify ``X-Gatehold-Assertion``."""
    keys = request.app[GATEWAY].forward.signer.jwks()
    return web.Response(
        text=json.dumps(keys),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
