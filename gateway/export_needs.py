"""Which routes a front proxy must hand to Gatehold's full proxy, and why.

One function, ``full_proxy_needs``, so the exporter asks the same question the decision
endpoint asks when it refuses a route in forward-auth mode.
"""

from __future__ import annotations

from gateway.model import IdSource, Route


def full_proxy_needs(route: Route) -> list[str]:
    """What of the request body or the answer ``route`` needs Gatehold to see (empty:
    the request head is enough, so forward-auth may decide it)."""
    needs = []
    if any(spec.source in (IdSource.BODY, IdSource.FORM) for spec in route.ids):
        needs.append("body ids")
    if route.body_tenant is not None:
        needs.append("body tenant")
    if route.upload is not None:
        needs.append("upload checks")
    if route.guard is not None:
        needs.append("response guard")
    if route.creates is not None:
        needs.append("owners learned on create")
    if route.file_disposition is not None:
        needs.append("file answer headers")
    if route.bind is not None:
        needs.append("tenant binding")
    return needs
