"""What a forward-auth decision cannot see, route by route.

Behind a front proxy (nginx ``auth_request``, Caddy ``forward_auth``, Traefik
``forwardAuth``) the decision endpoint gets the request's method, target and headers,
never its body, and never the app's answer. A route whose safety rests on either is
undecidable there: the endpoint refuses it (``full-proxy-required``), the exported
front-proxy configs send it to the full proxy, and ``gatehold rules check --mode
forward-auth`` lists it. Pure: no I/O, no aiohttp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.model import IdSource, Reason, Rejection, Route

OVERRIDE_METHOD = "POST"
"""The only method whose body frameworks read a ``_method`` override from."""
POST_REASON = "POST:"


@dataclass(frozen=True, slots=True)
class Unfit:
    """One route that only the full proxy can guard, and why."""

    route: str
    why: tuple[str, ...]
    """Every reason, each a short sentence naming the rule that needs the full proxy."""

    @property
    def only_post(self) -> bool:
        """Only its POSTs need the full proxy (their bodies may override the method);
        its other methods can be decided at the endpoint."""
        return all(why.startswith(POST_REASON) for why in self.why)


def unfit_reasons(route: Route, *, apps_read_method_override: bool = True) -> tuple[str, ...]:
    """Why ``route`` cannot be decided without the body or the answer (empty: it can)."""
    why: list[str] = []
    if any(spec.source in (IdSource.BODY, IdSource.FORM) for spec in route.ids):
        why.append("body_ids: object ids are read from the request body")
    if route.body_tenant is not None:
        why.append("body_tenant: the body's tenant field is checked")
    if route.upload is not None:
        why.append("upload: the files are checked by content")
    if route.bind is not None:
        why.append("bind: the tenant is set into the forwarded query or headers")
    if route.guard is not None:
        why.append("guard: the app's answer is checked for foreign tenants' data")
    if route.file_disposition is not None:
        why.append("file: the download's answer headers are set by the gateway")
    if route.creates is not None:
        why.append("learn_on_create: the owner is learned from the app's 201 answer")
    if route.websocket:
        why.append("websocket: the Origin check and the frames pass through the gateway")
    if apps_read_method_override and takes_post(route):
        why.append(f"{POST_REASON} the body may override the method (_method) as the app reads it")
    return tuple(why)


def takes_post(route: Route) -> bool:
    """Whether a POST may reach ``route`` (``methods`` unset means every method)."""
    return route.methods is None or OVERRIDE_METHOD in route.methods


def unfit_routes(routes: Sequence[Route], *, apps_read_method_override: bool = True) -> list[Unfit]:
    """The routes that need the full proxy, in rules order."""
    found = []
    for route in routes:
        why = unfit_reasons(route, apps_read_method_override=apps_read_method_override)
        if why:
            found.append(Unfit(route.name, why))
    return found


def refusal(route: Route, method: str, *, apps_read_method_override: bool) -> Rejection | None:
    """The refusal of ``method`` on ``route`` at the decision endpoint, or ``None``.

    A route unfit only because of POST bodies stays decidable for its other methods.
    """
    why = [
        reason
        for reason in unfit_reasons(route, apps_read_method_override=apps_read_method_override)
        if method == OVERRIDE_METHOD or not reason.startswith(POST_REASON)
    ]
    if not why:
        return None
    detail = (
        f"route {route.name!r} needs the full proxy ({'; '.join(why)}); "
        "send this address to the gateway itself, not to its decision endpoint"
    )
    return Rejection(Reason.FULL_PROXY_REQUIRED, detail)


def describe(routes: Sequence[Route], *, apps_read_method_override: bool = True) -> list[str]:
    """``rules check --mode forward-auth``: which routes need the full proxy, and why."""
    unfit = unfit_routes(routes, apps_read_method_override=apps_read_method_override)
    by_name = {route.name: route for route in routes}
    lines = [
        f"forward-auth: {len(unfit)} of {len(routes)} routes need the full proxy "
        "(the decision endpoint refuses them: full-proxy-required)"
    ]
    for item in unfit:
        route = by_name[item.route]
        methods = ",".join(sorted(route.methods)) if route.methods else "any method"
        only = ", its POSTs only" if item.only_post else ""
        lines.append(f"  {item.route}: {route.pattern} ({methods}{only})")
        lines.extend(f"    - {why}" for why in item.why)
    decidable = [r.name for r in routes if r.name not in {u.route for u in unfit}]
    lines.append(
        f"forward-auth: {len(decidable)} routes can be decided at /.gatehold/auth"
        + (f": {', '.join(decidable)}" if decidable else "")
    )
    if apps_read_method_override:
        lines.append(
            "forward-auth: POST routes are listed because the apps may read a _method "
            "override from the body (forward_auth.apps_read_method_override: true); "
            "their other methods can still be decided"
        )
    return lines
