"""Tenant binding: the app is told the tenant by the gateway, never by the client.

A list endpoint whose app filters by a ``tenant`` parameter (or header) answers with
the tenant the *client* chose: rows, counts, facets and page tokens of another tenant.
A route's ``bind`` sets that parameter or header to the tenant the request acts in
(the path's tenant, the object's owner, else the caller's active tenant), after
removing every spelling of it the client sent, so the app filters to the caller's
tenant itself and everything it derives from the rows is the caller's own. Its
``body_tenant`` does the same for the tenant field of a write's body
(``body_tenant.py``).

``bind_tenant`` runs on an allowed decision, inside ``pipeline.decide``, so ``rules
simulate`` refuses what live traffic refuses; the forwarded target it returns is the
one audited and sent (the canonical target with the binding). ``bind_headers`` is
applied by the forwarder to the headers it sends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote, unquote, unquote_plus

from multidict import CIMultiDict

from gateway.bodies import Body
from gateway.body_tenant import check_body
from gateway.headers import always_stripped, fold
from gateway.model import (
    Admitted,
    Decision,
    IncomingRequest,
    Reason,
    Rejection,
    Route,
    Target,
)
from gateway.objects import ObjectExtractor
from gateway.params import name_from_key, related

_NOT_BINDABLE = frozenset({"cookie", "authorization", "content-type", "content-encoding"})


@dataclass(frozen=True, slots=True)
class Bound:
    """A request with the tenant bound: what to audit and forward."""

    admitted: Admitted
    """The admitted request; its target carries the bound query parameters."""
    body: bytes | IO[bytes] | None
    """The body to forward (checked, maybe with the tenant field added)."""
    decision: Decision
    """The decision, its reason chain telling what was bound."""


def binds(route: Route) -> bool:
    """Whether ``route`` binds anything to the tenant."""
    return route.body_tenant is not None or (
        route.bind is not None and bool(route.bind.query or route.bind.headers)
    )


def bound_header_problem(name: str) -> str | None:
    """Why a header may not be bound (the gateway's own, hop-by-hop, framing), or ``None``."""
    folded = fold(name)
    if always_stripped(name) or folded in _NOT_BINDABLE:
        return f"{name!r} is set by the gateway or the client's connection; bind another header"
    return None


def bound_target(target: Target, names: tuple[str, ...], tenant: str) -> Target | Rejection:
    """``target`` with each of ``names`` set to ``tenant`` and every other spelling gone.

    The rest of the query is kept byte for byte, in order. A bound name hidden behind
    a ``;`` (older Rack splits on it; ``&``-parsers read it as part of a value) cannot be
    removed for every reader, so it is refused.
    """
    checked = [name_from_key(n) for n in names]
    kept: list[str] = []
    for pair in target.query.split("&") if target.query else ():
        raw_key = pair.split("=", 1)[0]
        if any(related(unquote_plus(raw_key, errors="replace"), n) for n in checked):
            continue
        for piece in pair.split(";")[1:]:
            hidden = unquote(piece.split("=", 1)[0].replace("+", " "), errors="replace")
            if any(related(hidden, n) for n in checked):
                return Rejection(
                    Reason.PARAM_AMBIGUOUS,
                    f"the parameter {hidden[:60]!r} hides behind a ';' and is set by the gateway",
                )
        kept.append(pair)
    kept += [f"{quote(n, safe='')}={quote(tenant, safe='')}" for n in names]
    return Target(target.path, "&".join(kept))


def bind_headers(headers: CIMultiDict[str], route: Route, tenant: str | None) -> None:
    """Set the route's bound headers to ``tenant``, removing every spelling sent."""
    if route.bind is None or not route.bind.headers or tenant is None:
        return
    bound = {fold(name) for name in route.bind.headers}
    for name in [n for n in headers if fold(n) in bound]:
        headers.popall(name, None)
    for name in route.bind.headers:
        headers[name] = tenant


async def bind_tenant(
    objects: ObjectExtractor,
    request: IncomingRequest,
    *,
    admitted: Admitted,
    route: Route,
    method: str,
    decision: Decision,
    read: Body | None,
    body: bytes | IO[bytes] | None,
) -> Bound | Rejection:
    """Bind an allowed request to its tenant: query, headers and body, or why not.

    ``read`` is the body when deciding already read it (``body`` is then its
    forwardable form); otherwise a ``body_tenant`` route reads it here.
    """
    tenant = decision.tenant
    if tenant is None:
        return Rejection(Reason.TENANT_UNSELECTED, "this route needs a selected tenant")
    steps: list[str] = []
    if route.bind is not None and route.bind.query:
        target = bound_target(admitted.target, route.bind.query, tenant)
        if isinstance(target, Rejection):
            return target
        steps.append(f"query {', '.join(route.bind.query)} set to {tenant!r}")
        if admitted.target.query and not target.query.startswith(admitted.target.query):
            steps.append(f"the client's query was {admitted.target.query[:200]!r}")
        admitted = dataclasses.replace(admitted, target=target)
    if route.bind is not None and route.bind.headers:
        steps.append(f"header {', '.join(route.bind.headers)} set to {tenant!r}")
    if route.body_tenant is not None:
        if read is None and request.body_exists:
            got = await objects.read_inspectable(request, route)
            if isinstance(got, Rejection):
                return got
            read = got
        if read is not None and read.size > objects.inspect_limit(route):
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        checked = check_body(route.body_tenant, request, method, read, tenant)
        if isinstance(checked, Rejection):
            return checked
        if isinstance(checked, bytes):
            steps.append(f"body tenant field set to {tenant!r}")
            body = checked
        elif checked is not None:
            body = checked.forwardable()
    explain = (*decision.explain, *steps)
    return Bound(admitted, body, dataclasses.replace(decision, explain=explain))


def refused_binding(decision: Decision, rejection: Rejection) -> Decision:
    """The denial of an allowed request whose binding failed: same action and tenant."""
    return dataclasses.replace(
        decision,
        allowed=False,
        reason=rejection.reason,
        roles=(),
        explain=(*decision.explain, rejection.detail, f"denied: {rejection.reason}"),
        detail=rejection.detail,
    )
