"""Owners learned from creates (``learn_on_create``): the tenant that made an object owns it.

Only a route that declares ``creates: <resource>`` teaches owners, and only from its
``201`` whose same-origin ``Location`` names that resource's object route on the same
upstream. The creating request's tenant becomes the owner of an id that has none yet;
an id that has an owner keeps it.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from gateway.context import Gateway
from gateway.ingress import canonicalize
from gateway.model import Decision, IdSource, RouteMatch, Target, UpstreamReply
from gateway.observe import is_observed

log = logging.getLogger("gatehold.ownership")


async def learn_created(
    gw: Gateway, match: RouteMatch, decision: Decision, reply: UpstreamReply
) -> None:
    """Register the owner of an object created through the gateway, if ``reply`` names one."""
    resource = match.route.creates
    location = reply.headers.get("Location")
    if resource is None or reply.status != 201 or not location or decision.tenant is None:
        return
    if is_observed(decision):  # only a create the rules allowed teaches an owner
        return
    object_id = created_id(gw, location, resource, upstream=match.route.upstream)
    if object_id is None:
        log.info("a %s create answered a Location naming no new %s", match.route.name, resource)
        return
    try:
        learned = await gw.ownership.learn_created(
            resource_type=resource, object_id=object_id, tenant=decision.tenant
        )
    except Exception:  # the object exists upstream; its creator still gets the answer
        log.exception("could not register the owner of %s %s", resource, object_id)
        return
    if not learned:
        log.warning("%s %s already has an owner; a create did not move it", resource, object_id)


def created_id(gw: Gateway, location: str, resource: str, *, upstream: str) -> str | None:
    """The id a create's ``Location`` names, if it is an object of ``resource`` here."""
    parts = urlsplit(location)
    if (parts.scheme or parts.netloc) and (
        f"{parts.scheme}://{parts.netloc}".lower() != gw.public_url.lower().rstrip("/")
    ):
        return None  # another origin: not an object behind this gateway
    target = canonicalize(parts.path or "/")
    if not isinstance(target, Target):
        return None
    created = gw.router.match(target, "GET")
    if not isinstance(created, RouteMatch) or created.route.upstream != upstream:
        return None
    spec = created.route.ids[0] if created.route.ids else None
    if spec is None or spec.source is not IdSource.PATH or spec.type != resource:
        return None
    return created.params[spec.key]
