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

from gateway.export_needs import full_proxy_needs
from gateway.model import Route, RuleSet
from gateway.routing import Template, parse_template, with_head

IDENTITY_HEADERS = (
    "X-Gatehold-User",
    "X-Gatehold-Email",
    "X-Gatehold-Tenant",
    "X-Gatehold-Roles",
    "X-Gatehold-Assertion",
    "X-Request-Id",
)
"""What the decision endpoint answers on a 2xx (always every one) and the front proxy
copies to the app, replacing anything the client sent under these names."""

CLIENT_HEADERS_DROPPED = (
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
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
    "X-Original-URL",
    "X-Original-URI",
    "X-Original-Method",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "Forwarded",
)
"""Client-sent identity and routing headers (I4) a front proxy removes by exact name,
besides ``IDENTITY_HEADERS``; proxies that can (Caddy, Traefik) also remove prefixes."""

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


def build_plan(ruleset: RuleSet, *, gatehold_url: str, listen: str) -> ExportPlan:
    """The plan of ``ruleset``: every route, ordered as Gatehold matches them."""
    ordered = sorted(ruleset.routes, key=_specificity)
    routes = tuple(_route_export(route) for route in ordered)
    used = {r.upstream for r in routes if r.forward_auth}
    upstreams = {name: ruleset.upstreams[name].url for name in sorted(used)}
    return ExportPlan(routes, upstreams, gatehold_url.rstrip("/"), listen)


def _template(route: Route) -> Template:
    template = parse_template(route.pattern)
    if isinstance(template, str):  # the loader compiled every template already
        raise ValueError(template)
    return template


def _specificity(route: Route) -> tuple[int, ...]:
    return _template(route).specificity


def _route_export(route: Route) -> RouteExport:
    template = _template(route)
    methods = with_head(route.methods)
    return RouteExport(
        name=route.name,
        methods=tuple(sorted(methods)) if methods is not None else None,
        path_regex=template.regex.pattern,
        upstream=route.upstream,
        needs=tuple(full_proxy_needs(route)),
    )


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
