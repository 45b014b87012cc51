"""Traefik dynamic configuration for Gatehold in forward-auth mode (``gatehold export
traefik``), as YAML for the file provider (Traefik v3 rule syntax).

Each forward-auth route is a router (``Method`` and ``PathRegexp``, priority from
Gatehold's own specificity order) through two middlewares: one removes client-sent
identity headers (an empty value in ``customRequestHeaders`` deletes a header), the
other is ``forwardAuth`` to ``/.gatehold/auth`` with ``authResponseHeaders`` naming
every identity header. Full-proxy routes and a catch-all router of the lowest priority
go to Gatehold's full proxy.
"""

from __future__ import annotations

from typing import Any

import yaml

from gateway.export_plan import (
    CLIENT_HEADERS_DROPPED,
    IDENTITY_HEADERS,
    PASSED_ON,
    ExportPlan,
    RouteExport,
    safe_name,
    unnamed,
)

STRIP = "gatehold-strip-identity"
ASK = "gatehold-forward-auth"
GATEHOLD = "gatehold"


def traefik_config(plan: ExportPlan, *, entry_point: str = "web") -> str:
    """The dynamic configuration as YAML."""
    document = {"http": traefik_document(plan, entry_point=entry_point)}
    header = (
        "# Written by `gatehold export traefik` from the rules: edit the rules, export again.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=200)


def traefik_document(plan: ExportPlan, *, entry_point: str) -> dict[str, Any]:
    routers: dict[str, Any] = {}
    count = len(plan.routes)
    for index, route in enumerate(plan.routes):
        routers[f"gatehold-{index}-{safe_name(route.name)}"] = _router(
            route, priority=1000 + count - index, entry_point=entry_point
        )
    routers["gatehold-full-proxy"] = {
        "entryPoints": [entry_point],
        "rule": "PathPrefix(`/`)",
        "priority": 1,
        "service": GATEHOLD,
    }
    services: dict[str, Any] = {GATEHOLD: _service(plan.gatehold_url)}
    for name, url in plan.upstreams.items():
        services[_app(name)] = _service(url)
    return {"routers": routers, "middlewares": _middlewares(plan), "services": services}


def _app(name: str) -> str:
    return f"gatehold-app-{safe_name(name)}"


def _router(route: RouteExport, *, priority: int, entry_point: str) -> dict[str, Any]:
    rule = f"PathRegexp(`^{unnamed(route.path_regex)}$`)"
    if route.methods is not None:
        rule = "(" + " || ".join(f"Method(`{m}`)" for m in route.methods) + ") && " + rule
    router: dict[str, Any] = {"entryPoints": [entry_point], "rule": rule, "priority": priority}
    if route.forward_auth:
        router |= {"middlewares": [STRIP, ASK], "service": _app(route.upstream)}
    else:
        router["service"] = GATEHOLD
    return router


def _middlewares(plan: ExportPlan) -> dict[str, Any]:
    dropped = dict.fromkeys((*IDENTITY_HEADERS, *PASSED_ON, *CLIENT_HEADERS_DROPPED), "")
    return {
        STRIP: {"headers": {"customRequestHeaders": dropped}},
        ASK: {
            "forwardAuth": {
                "address": f"{plan.gatehold_url}/.gatehold/auth",
                "trustForwardHeader": False,
                "authResponseHeaders": list(IDENTITY_HEADERS),
            }
        },
    }


def _service(url: str) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": url}], "passHostHeader": False}}
