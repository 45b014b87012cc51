"""The demo rules with the ``ledger`` upstream in observe mode (``gateway/observe.py``)."""

from __future__ import annotations

from typing import Any

import yaml

from gateway.config.observe_window import stamp
from tests.support.stack import DEMO_RULES

ECHO_ROUTE = {
    "name": "tenant-echo",
    "match": {"path": "/api/echo/t/{tenant:slug}"},
    "upstream": "ledger",
    "tenant": "path.tenant",
}
"""A tenant route whose app answers with the request it got (Ledger's ``/api/echo``)."""


def observing_rules(until: float, **route_modes: str) -> str:
    """The demo rules plus ``ECHO_ROUTE``, the ledger upstream observing until ``until``
    (Unix time); ``route_modes`` gives routes a mode of their own
    (``{"invoice-delete": "enforce"}``)."""
    rules: dict[str, Any] = yaml.safe_load(DEMO_RULES.read_text())
    rules["routes"].insert(0, ECHO_ROUTE)
    rules["upstreams"]["ledger"] |= {"mode": "observe", "observe_until": stamp(until)}
    for route in rules["routes"]:
        if route["name"] in route_modes:
            route["mode"] = route_modes[route["name"]]
    return yaml.safe_dump(rules, sort_keys=False)
