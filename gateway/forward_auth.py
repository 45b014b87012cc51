"""``/.gatehold/auth``: decisions for a front proxy that moves the bytes itself.

nginx ``auth_request``, Caddy ``forward_auth``, Traefik ``forwardAuth`` and the
ingress-nginx ``auth-url`` annotation ask here before passing a request on. The
original request is rebuilt from their headers (``original.py``) and decided by
``pipeline.decide``, the very code that decides proxied traffic: the canonical target
from the *raw* original URI through the same strict ingress, identity from the cookie or
bearer the front proxy passes along, route, ids, ownership, policy, enumeration block.
The audit record is committed before any 2xx (I5: the store down is a 503, never a 200).

    trusted caller → original request → decide (fit) → audit → answer

The 200 carries every identity header, always, empty when there is no value (Caddy 2.6
forwards the literal placeholder text of a header the answer lacks), and the signed
assertion; the front proxy copies them over whatever the client sent. A refusal is the
proxy's own problem answer; a sign-in refusal is a 401 with ``Location`` and
``X-Gatehold-Login`` (nginx's ``auth_request`` cannot pass a 302 on). Routes whose
safety rests on the body or the app's answer are refused (``forward_auth_fit``).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

from aiohttp import web

from gateway.config.settings import ForwardAuthSettings
from gateway.context import Gateway
from gateway.errors import StoreUnavailable
from gateway.forward_auth_fit import refusal as fit_refusal
from gateway.forward_auth_target import forwarded_as_judged
from gateway.headers import DEFAULT_STRIP, HeaderStrip, strip_gateway_cookies
from gateway.ingress import TrustedProxies
from gateway.live import LIVE
from gateway.logs import note_refused
from gateway.model import (
    AuthMethod,
    Decision,
    MatchResult,
    Principal,
    Reason,
    Rejection,
    RouteMatch,
)
from gateway.observe import note_observed, verdict_of
from gateway.original import FRONT_PROXY_HEADERS, Original, original_request, spoofed
from gateway.pipeline import (
    AUDIT_UNAVAILABLE_DETAIL,
    Verdict,
    busy_record,
    decide,
    request_record,
)
from gateway.refusals import caller_of, observe_denial, reject_unread
from gateway.shadow import SHADOW

FORWARD_AUTH_PATH = "/.gatehold/auth"
BEARER_METHODS = frozenset({AuthMethod.BEARER_JWT, AuthMethod.API_KEY})
"""Credentials of the gateway's own, never passed on to the app (like the full proxy)."""
IDENTITY_HEADERS = (
    "X-Gatehold-User",
    "X-Gatehold-Email",
    "X-Gatehold-Tenant",
    "X-Gatehold-Roles",
    "X-Gatehold-Assertion",
)
"""Sent on every 2xx, each one always (empty when it has no value)."""
COOKIE_HEADER = "X-Gatehold-Cookie"
"""The client's ``Cookie`` without the gateway's session cookie: the front proxy sends it
to the app as ``Cookie`` (the full proxy never forwards the gateway's cookies, I4)."""
AUTHORIZATION_HEADER = "X-Gatehold-Authorization"
"""The client's ``Authorization``, empty when it was the gateway's own credential (an API
key or bearer token): the front proxy sends it to the app as ``Authorization``."""
PASSED_ON = (*IDENTITY_HEADERS, COOKIE_HEADER, AUTHORIZATION_HEADER)
COPIED = frozenset(name.lower() for name in PASSED_ON)
"""What the front proxy copies from the 200 over the client's own values."""
LOGIN_HEADER = "X-Gatehold-Login"
"""The sign-in address of a 401, for nginx's ``error_page 401`` to redirect to."""
STATUS_HEADER = "X-Gatehold-Status"
"""The refusal's status again: nginx's ``auth_request`` passes only 401 and 403 on (any
other status becomes its 500), but ``auth_request_set`` can read this header."""
VIA = "forward-auth"
FULL_PROXY_DETAIL = (
    "This address needs the gateway's full proxy (its body or its answer is checked); "
    "the front proxy must send it to the gateway itself."
)


class ForwardAuth:
    """The endpoint's settings: whether it answers, who may ask, what it refuses."""

    def __init__(
        self,
        settings: ForwardAuthSettings,
        trusted_proxies: list[str],
        strip: HeaderStrip = DEFAULT_STRIP,
    ) -> None:
        self.enabled = settings.enabled
        self.apps_read_method_override = settings.apps_read_method_override
        self.trusted = TrustedProxies(trusted_proxies)
        self.strip = strip

    def fit(self, match: MatchResult, method: str) -> Rejection | None:
        """``pipeline.Fit``: refuse routes the endpoint cannot decide without the bytes."""
        if not isinstance(match, RouteMatch):
            return None
        return fit_refusal(
            match.route, method, apps_read_method_override=self.apps_read_method_override
        )


FORWARD_AUTH = web.AppKey("forward_auth", ForwardAuth)


def mount_forward_auth(app: web.Application, forward_auth: ForwardAuth) -> None:
    """Answer ``/.gatehold/auth`` for any method (the original one comes in headers)."""
    app[FORWARD_AUTH] = forward_auth
    app.router.add_route("*", FORWARD_AUTH_PATH, answer)


async def answer(request: web.Request) -> web.StreamResponse:
    """Decide the front proxy's request under the rules in force when it arrived."""
    live = request.app[LIVE]
    gw = live.enter()
    try:
        return await _answer(gw, request, request.app[FORWARD_AUTH])
    finally:
        live.leave(gw)


async def _answer(gw: Gateway, request: web.Request, fa: ForwardAuth) -> web.StreamResponse:
    started = time.monotonic()
    if not fa.enabled:
        refusal = Rejection(Reason.ROUTE_NOT_FOUND, "forward-auth is not enabled")
        return await _reject(gw, request, refusal)
    if (request.remote or "") not in fa.trusted:
        detail = "only the front proxies in server.trusted_proxies may ask for decisions"
        return await _reject(gw, request, Rejection(Reason.PROXY_UNTRUSTED, detail))
    original = original_request(request)
    if isinstance(original, Rejection):
        return await _reject(gw, request, original)
    if name := spoofed(original.headers, fa.strip, COPIED):
        detail = (
            f"the {name} header is set by the gateway or the front proxy only; "
            "a front proxy would pass it on to the app, so the request is refused"
        )
        return await _reject(
            gw, request, Rejection(Reason.HEADER_INVALID, detail), original=original
        )
    verdict = await decide(gw, original, gate=partial(gw.in_flight.enter, request), fit=fa.fit)
    answered = await _audited(gw, request, original, verdict, started)
    if (shadow := request.app.get(SHADOW)) is not None and shadow.current is not None:
        await shadow.judge(gw, original, verdict, fit=fa.fit)  # never changes the answer
    return answered


async def _audited(
    gw: Gateway, request: web.Request, original: Original, verdict: Verdict, started: float
) -> web.StreamResponse:
    """Commit the audit record, then answer (I5): 200 with identity, or the refusal."""
    admitted, principal, match, decision = (
        verdict.admitted,
        verdict.principal,
        verdict.match,
        verdict.decision,
    )
    if isinstance(admitted, Rejection):
        return await _reject(gw, request, admitted, original=original)
    if (unlike := forwarded_as_judged(original.raw_path, admitted.target)) is not None:
        return await _reject(gw, request, unlike, original=original)
    if verdict.held is not None:  # too many of the caller's requests in progress: 429
        gw.audit.record(busy_record(principal, admitted, verdict.held, original.method, via=VIA))
        return _render(gw, request, admitted.request_id, admitted.target.raw, verdict.held)
    route = match.route.name if isinstance(match, RouteMatch) else ""
    entry = request_record(verdict, admitted, original.headers.get("User-Agent", ""))
    entry.data["via"] = VIA
    entry.data["dialect"] = original.dialect
    if decision.reason is Reason.FULL_PROXY_REQUIRED:
        entry.data["full_proxy"] = decision.detail
    allowed = False
    if decision.allowed and isinstance(match, RouteMatch):
        allowed = True
        response = _allowed(gw, admitted.request_id, principal, match, decision)
        response.headers.update(_passed_on(original, principal))
    else:
        response = _render(gw, request, admitted.request_id, admitted.target.raw, decision)
    # The answer is known before the commit, unlike a proxied request's: the one
    # record says it, and no outcome record follows (half the audit rows per decision).
    entry.data["status"] = response.status
    try:
        await gw.audit.begin(entry)
    except StoreUnavailable:
        refusal = Rejection(Reason.AUDIT_UNAVAILABLE, AUDIT_UNAVAILABLE_DETAIL)
        note_refused(refusal.reason.value)
        gw.metrics.decided(route, "deny", refusal.reason.value, time.monotonic() - started)
        return _render(gw, request, admitted.request_id, admitted.target.raw, refusal)
    if verdict.observed is not None:
        await asyncio.sleep(await note_observed(gw, principal, verdict.observed, admitted, match))
    if not allowed:
        await asyncio.sleep(await observe_denial(gw, principal, decision, admitted))
    verdict_name = verdict_of(decision) if allowed else "deny"
    gw.metrics.decided(route, verdict_name, decision.reason.value, time.monotonic() - started)
    return response


def _allowed(
    gw: Gateway,
    request_id: str,
    principal: object,
    match: RouteMatch,
    decision: Decision,
) -> web.Response:
    """200 with every identity header (empty when unknown) and the signed assertion."""
    headers = dict.fromkeys(IDENTITY_HEADERS, "")
    if isinstance(principal, Principal):
        headers["X-Gatehold-User"] = principal.user_id
        headers["X-Gatehold-Email"] = principal.email
        headers["X-Gatehold-Tenant"] = decision.tenant or ""
        headers["X-Gatehold-Roles"] = ",".join(decision.roles)
        headers["X-Gatehold-Assertion"] = gw.forward.signer.sign(
            principal=principal,
            tenant=decision.tenant,
            roles=decision.roles,
            audience=match.route.upstream,
            now=gw.clock(),
        )
    headers["X-Request-Id"] = request_id
    headers["Cache-Control"] = "no-store"
    return web.Response(status=200, headers=headers)


def _passed_on(original: Original, principal: object) -> dict[str, str]:
    """The ``Cookie`` and ``Authorization`` the app may see, for the front proxy to set."""
    cookie = "; ".join(
        kept
        for value in original.headers.getall("Cookie", [])
        if (kept := strip_gateway_cookies(value))
    )
    authorization = original.headers.get("Authorization", "")
    if isinstance(principal, Principal) and principal.auth_method in BEARER_METHODS:
        authorization = ""
    return {COOKIE_HEADER: cookie, AUTHORIZATION_HEADER: authorization}


def _render(
    gw: Gateway,
    request: web.Request,
    request_id: str,
    target: str,
    verdict: Decision | Rejection,
) -> web.Response:
    """The proxy's problem answer; a sign-in refusal stays a 401 and names the sign-in."""
    reason = verdict.reason
    detail = FULL_PROXY_DETAIL if reason is Reason.FULL_PROXY_REQUIRED else verdict.detail
    problem = gw.renderer.problem(
        reason,
        detail=detail or "The request was not allowed.",
        request_id=request_id,
        target=target,
        tenant=verdict.tenant if isinstance(verdict, Decision) else None,
    )
    response = gw.renderer.render(request, problem, redirect=False)
    response.headers[STATUS_HEADER] = str(response.status)
    if problem.login is not None:
        response.headers["Location"] = problem.login
        response.headers[LOGIN_HEADER] = problem.login
    return response


async def _reject(
    gw: Gateway,
    request: web.Request,
    rejection: Rejection,
    *,
    original: Original | None = None,
) -> web.Response:
    """A request refused before it had a canonical target: audited as ``rejected``, with
    its caller when the original came with a credential (as the full proxy does)."""
    actor, data = "anonymous", {"via": VIA, "peer": request.remote or ""}
    if original is not None:
        actor, identity = await caller_of(gw, original)
        data |= identity | {"method": original.method, "raw_target": original.raw_path[:1024]}
        data["dialect"] = original.dialect
    else:
        for name in FRONT_PROXY_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                data[name.lower()] = value[:1024]
    response = reject_unread(gw, request, rejection, actor=actor, **data)
    response.headers[STATUS_HEADER] = str(response.status)
    return response
