"""A Caddyfile for Gatehold in forward-auth mode (``gatehold export caddy``).

Everything sits in one ``route`` block, so it runs in the order written (Caddy would
otherwise sort ``request_header`` after ``forward_auth``):

1. client-sent identity and routing headers are removed, by name and by prefix (I4);
2. ``/.gatehold/auth`` is not answered to clients (an answer carries an assertion);
3. each forward-auth route, most specific first, is a ``handle`` with
   ``forward_auth`` (``copy_headers`` names every identity header; the endpoint always
   sends all of them, because Caddy 2.6 forwards the literal placeholder text for a
   header the answer lacks) and ``reverse_proxy`` to the app, without Gatehold's own
   cookies; a full-proxy route is a
   ``handle`` that goes to Gatehold, so a less specific forward-auth route below it
   cannot catch its requests;
4. everything else, ``/.gatehold/`` included, goes to Gatehold's full proxy.

Caddy forwards the raw request target to both the endpoint (``X-Forwarded-Uri``) and
the app, so Gatehold decides on exactly what the app receives.
"""

from __future__ import annotations

from gateway.export_plan import (
    CLIENT_HEADERS_DROPPED,
    DROPPED_PREFIXES,
    IDENTITY_HEADERS,
    PASSED_ON,
    ExportPlan,
    RouteExport,
    host_port,
    safe_name,
    unnamed,
)

BROWSER = ("method GET HEAD", "header Accept *text/html*")
"""A browser navigation: a 401 becomes the redirect to the sign-in (as Gatehold does)."""


def caddy_config(plan: ExportPlan, *, standalone: bool = False) -> str:
    """The Caddyfile; ``standalone`` adds global options for a private test instance
    (no admin endpoint, no automatic HTTPS)."""
    host, _, port = plan.listen.rpartition(":")
    lines = ["# Written by `gatehold export caddy` from the rules: edit the rules, export again."]
    if standalone:
        lines += ["{", "\tadmin off", "\tauto_https off", "}", ""]
    lines += [f"http://:{port} {{"]
    if host:
        lines.append(f"\tbind {host.strip('[]')}")
    lines += ["\t@gatehold_browser {", *(f"\t\t{m}" for m in BROWSER), "\t}"]
    lines += ["\t@gatehold_not_browser {", "\t\tnot {"]
    lines += [*(f"\t\t\t{m}" for m in BROWSER), "\t\t}", "\t}"]
    lines += ["\troute {"]
    lines += [f"\t\t{line}" for line in _route_body(plan)]
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


def _route_body(plan: ExportPlan) -> list[str]:
    lines = [f"request_header -{name}" for name in (*IDENTITY_HEADERS, *CLIENT_HEADERS_DROPPED)]
    lines += [f"request_header -{prefix}*" for prefix in DROPPED_PREFIXES]
    lines += [
        "@gatehold_endpoint path /.gatehold/auth /.gatehold/auth/*",
        "respond @gatehold_endpoint 404",
    ]
    for index, route in enumerate(plan.routes):
        lines += _route(plan, index, route)
    lines += ["handle {", *(f"\t{line}" for line in _to_gatehold(plan)), "}"]
    return lines


def _route(plan: ExportPlan, index: int, route: RouteExport) -> list[str]:
    matcher = f"@gatehold_{index}_{safe_name(route.name)}"
    why = "forward-auth" if route.forward_auth else "full proxy: " + ", ".join(route.needs)
    lines = [f"# {route.name}: {why}", f"{matcher} {{"]
    if route.methods is not None:
        lines.append(f"\tmethod {' '.join(route.methods)}")
    lines.append(f'\tpath_regexp "^{unnamed(route.path_regex)}$"')
    lines.append("}")
    body = _forward_auth(plan, route) if route.forward_auth else _to_gatehold(plan)
    return [*lines, f"handle {matcher} {{", *(f"\t{line}" for line in body), "}"]


def _forward_auth(plan: ExportPlan, route: RouteExport) -> list[str]:
    app = host_port(plan.upstreams[route.upstream])
    return [
        "route {",
        *(f"\t{line}" for line in _asked_then_forwarded(plan, app)),
        "}",
    ]


def _asked_then_forwarded(plan: ExportPlan, app: str) -> list[str]:
    return [
        *_ask(plan, "@gatehold_browser", sign_in=True),
        *_ask(plan, "@gatehold_not_browser", sign_in=False),
        f"reverse_proxy {app} {{",
        "\theader_up Host {upstream_hostport}",
        "\theader_down X-Request-Id {http.request.header.X-Request-Id}",
        "}",
    ]


def _ask(plan: ExportPlan, matcher: str, *, sign_in: bool) -> list[str]:
    copied = [*IDENTITY_HEADERS, *(f"{answer}>{name}" for answer, name in PASSED_ON.items())]
    lines = [
        f"forward_auth {matcher} {host_port(plan.gatehold_url)} {{",
        "\turi /.gatehold/auth",
        f"\tcopy_headers {' '.join(copied)}",
    ]
    if sign_in:
        lines += [
            "\t@gatehold_sign_in {",
            "\t\tstatus 401",
            "\t\theader Location *",
            "\t}",
            "\thandle_response @gatehold_sign_in {",
            "\t\tredir {http.reverse_proxy.header.Location} 302",
            "\t}",
        ]
    return [*lines, "}"]


def _to_gatehold(plan: ExportPlan) -> list[str]:
    return [f"reverse_proxy {host_port(plan.gatehold_url)}"]
