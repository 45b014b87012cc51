"""What a front proxy must do for each route: ask Gatehold, or hand the request over.

``gatehold export`` writes nginx, Caddy and Traefik configs from one ``ExportPlan``.
A route whose decision needs only the request head is *forward-auth*: the front proxy
asks ``/.gatehold/auth`` and, on a 2xx, sends the request to the app itself. A route
that needs the body or the answer (body ids, body tenant, uploads, the response guard,
owners learned on create, file answer headers, tenant binding) goes to Gatehold's full
proxy. So does every request the plan does not name: the default is the full proxy.

The front proxy's split is a speed choice, never a security one. It matches the raw
request target against each route's template, most specific first, as Gatehold's
router does; a request it sends the wrong way is either refused by the endpoint (a
full-proxy route asked about in forward-auth mode) or judged in full by the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.forward_auth import AUTHORIZATION_HEADER, COOKIE_HEADER
from gateway.forward_auth import IDENTITY_HEADERS as ENDPOINT_IDENTITY_HEADERS
from gateway.forward_auth_fit import POST_REASON, unfit_reasons
from gateway.model import Route, RuleSet
from gateway.original import SET_BY_FRONT_PROXIES
from gateway.routing import Template, parse_template, with_head

IDENTITY_HEADERS = (*ENDPOINT_IDENTITY_HEADERS, "X-Request-Id")
"""What the decision endpoint answers on a 2xx (always every one) and the front proxy
copies to the app, replacing anything the client sent under these names."""

PASSED_ON = {COOKIE_HEADER: "Cookie", AUTHORIZATION_HEADER: "Authorization"}
"""Answer headers the front proxy sends to the app under another name: the client's
``Cookie`` without Gatehold's cookies, its ``Authorization`` without Gatehold's own
credentials."""

SET_BY_THE_PROXY = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")
"""Forwarding headers the exported configs set themselves, over the client's."""

CLIENT_HEADERS_DROPPED = tuple(
    sorted(
        {
            *(h.title() for h in SET_BY_FRONT_PROXIES),
            "X-Forwarded-User",
            "X-Forwarded-Email",
            "X-Forwarded-Groups",
            "X-Forwarded-Preferred-Username",
            "X-Forwarded-Access-Token",
            "X-Forwarded-Method",
            "X-Forwarded-Uri",
            "X-Auth-Request-User",
            "X-Auth-Request-Email",
            "X-Auth-Request-Groups",
            "X-Auth-Request-Access-Token",
            "X-Remote-User",
            "X-Remote-Email",
            "X-Remote-Groups",
            "Remote-User",
            "Remote-Email",
            "Remote-Groups",
            "Remote-Name",
            "X-User",
            "X-Email",
            "X-Groups",
            "X-Original-Url",
            "X-Original-Uri",
            "X-Original-Method",
            "X-Rewrite-Url",
            "X-Http-Method-Override",
            "X-Http-Method",
            "X-Method-Override",
            "X-Client-Ip",
            "True-Client-Ip",
        }
        - {h.title() for h in (*SET_BY_THE_PROXY, *IDENTITY_HEADERS)}
    )
)
"""Client-sent identity, routing and forwarding headers (I4) a front proxy removes by
exact name, besides ``IDENTITY_HEADERS``; proxies that can (Caddy, Traefik) also remove
prefixes. (The endpoint refuses a request that still carries one the full proxy would
strip, so a header missing here is a refusal, never a pass.)"""

DROPPED_PREFIXES = ("X-Gatehold-", "X-Auth-", "X-Remote-", "X-Original-", "X-Forwarded-User")
"""Prefixes of client headers removed where the front proxy supports wildcards."""


@dataclass(frozen=True, slots=True)
class RouteExport:
    """One route as the front proxy sees it."""

    name: str
    methods: tuple[str, ...] | None
    """Methods it matches (with HEAD where GET is), ``None`` for any."""
    path_regex: str
    """A full-match regular expression for the path, as Gatehold's router matches it
    (``(?P<name>…)`` groups, read by PCRE and Go's regexp alike)."""
    upstream: str
    """Name of the upstream in the rules."""
    needs: tuple[str, ...]
    """Why Gatehold must see the bytes (empty: forward-auth)."""

    @property
    def forward_auth(self) -> bool:
        return not self.needs


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Everything a front-proxy config is written from."""

    routes: tuple[RouteExport, ...]
    """Most specific first (Gatehold's own matching order)."""
    upstreams: dict[str, str]
    """Upstream name → base URL, for the upstreams forward-auth routes reach."""
    gatehold_url: str
    """Where the front proxy reaches Gatehold (scheme://host:port)."""
    listen: str
    """host:port the front proxy listens on."""

    @property
    def forward_auth_routes(self) -> tuple[RouteExport, ...]:
        return tuple(r for r in self.routes if r.forward_auth)


def build_plan(
    ruleset: RuleSet,
    *,
    gatehold_url: str,
    listen: str,
    apps_read_method_override: bool = True,
) -> ExportPlan:
    """The plan of ``ruleset``: every route, ordered as Gatehold matches them, split by
    method where only some of its methods can be decided at the endpoint."""
    ordered = sorted(ruleset.routes, key=lambda route: _template(route).specificity)
    routes = tuple(
        part
        for route in ordered
        for part in _route_parts(route, apps_read_method_override=apps_read_method_override)
    )
    used = {r.upstream for r in routes if r.forward_auth}
    upstreams = {name: ruleset.upstreams[name].url for name in sorted(used)}
    return ExportPlan(routes, upstreams, gatehold_url.rstrip("/"), listen)


def _template(route: Route) -> Template:
    template = parse_template(route.pattern)
    if isinstance(template, str):  # the loader compiled every template already
        raise ValueError(template)
    return template


def _route_parts(route: Route, *, apps_read_method_override: bool) -> list[RouteExport]:
    """``route`` as one or two plan entries: the methods the endpoint may decide, and
    those only the full proxy may (the same ``forward_auth_fit`` the endpoint asks)."""
    why = unfit_reasons(route, apps_read_method_override=apps_read_method_override)
    always = tuple(w for w in why if not w.startswith(POST_REASON))
    post_only = tuple(w for w in why if w.startswith(POST_REASON))
    regex = _template(route).regex.pattern

    def part(methods: tuple[str, ...] | None, needs: tuple[str, ...]) -> RouteExport:
        return RouteExport(route.name, methods, regex, route.upstream, needs)

    matched = with_head(route.methods)
    if always or not post_only:
        return [part(tuple(sorted(matched)) if matched is not None else None, always)]
    if matched is None:  # any method: POST first, so it is taken before the rest
        return [part(("POST",), post_only), part(None, ())]
    decidable = tuple(sorted(m for m in matched if m != "POST"))
    parts = [part(("POST",), post_only)]
    return parts + ([part(decidable, ())] if decidable else [])


def host_port(url: str) -> str:
    """``host:port`` of an http(s) URL (the scheme's port when none is written)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def safe_name(name: str) -> str:
    """A name usable as an nginx upstream / Caddy matcher / Traefik key."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def target_regex(route: RouteExport) -> str:
    """The route's path regex against a raw request target (query allowed after it)."""
    return f"^{unnamed(route.path_regex)}(?:\\?|$)"


def unnamed(regex: str) -> str:
    """``regex`` with its named groups made plain: nginx would turn each name into a
    variable, and the front proxies need no captures."""
    return _NAMED_GROUP.sub("(?:", regex)


_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


def method_names(routes: Sequence[RouteExport]) -> list[str]:
    return sorted({m for r in routes for m in (r.methods or ())})
