"""Observe mode: first contact with an app, loud and bounded.

A route in observe mode (``mode: observe`` on it or on its upstream, until
``observe_until``; ``config/observe_window.py``) forwards a request the rules refuse,
when the refusal is an *authorization* decision about a *signed-in* caller, and the
audit record carries the decision the rules would have taken (``decision: observed``,
``would_decide: deny`` and its reason). Administrators see what enforcing would break
before it does.

What observe mode never lets through:

* anything refused before a decision: ingress (ambiguous targets, smuggling, header
  and size limits), the in-flight cap, forward-auth's "needs the full proxy";
* anonymous callers and invalid credentials (they still get the sign-in answer);
* paths that match no route, and methods a route does not take (observe is a property
  of a route, and an unmatched request has none);
* what protects the gateway and the system of record rather than judging the caller:
  the enumeration block, too many ids, ids of the wrong type, a resolver that failed
  (fail closed, I4b), bodies that cannot be read as the app reads them;
* what the caller can satisfy by signing in again: step-up and second factor;
* WebSocket upgrades: a connection let through would outlive the window;
* every check made after the decision on an allowed request: tenant bindings
  (``bind``, ``body_tenant``), upload checks and virus scans, body limits while
  streaming, the response guard.

The window is checked against the gateway's clock on every request, so observe mode
ends at ``observe_until`` by itself, with no reload. A forwarded request carries the
caller's own identity and active tenant and *no* granted roles: the gateway does not
vouch for a grant the rules did not make. Would-be denials still feed the enumeration
defence, so a caller sweeping ids is blocked (and that block is enforced).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from gateway.config.observe_window import left, stamp
from gateway.model import (
    ALLOWING_REASONS,
    Admitted,
    AuditEntry,
    AuthMethod,
    Decision,
    MatchResult,
    Principal,
    Reason,
    Rejection,
    Route,
    RouteMatch,
)
from gateway.refusals import observe_denial

if TYPE_CHECKING:
    from gateway.context import Deciders, Gateway
    from gateway.model import Anonymous

log = logging.getLogger("gatehold")

OBSERVED = "observed"
"""The audit ``decision`` of a request forwarded in observe mode."""
OBSERVABLE = frozenset(
    {
        Reason.ROLE_FORBIDDEN,
        Reason.TENANT_FOREIGN,
        Reason.TENANT_UNSELECTED,
        Reason.OBJECT_NOT_FOUND,
        Reason.PARAM_FORBIDDEN,
        Reason.PARAM_MISSING,
    }
)
"""Refusals that judge whether the caller may act on this route, this tenant, these
objects, with this query: the only ones observe mode forwards."""
BANNER_ROUTES = 12
"""Routes named one by one in the admin banner; the rest are counted."""


@dataclass(frozen=True, slots=True)
class Window:
    """One route observing now, and when it starts enforcing by itself."""

    route: str
    upstream: str
    until: float

    @property
    def until_text(self) -> str:
        return stamp(self.until)


def forwarded_anyway(
    caller: Principal | Anonymous | Rejection,
    match: MatchResult,
    decision: Decision,
    now: float,
    *,
    websocket: bool = False,
) -> Decision | None:
    """The decision to forward with, when observe mode overrules ``decision``; else ``None``.

    Only a refusal in ``OBSERVABLE`` of a signed-in person (not an API key) on a route
    whose window is open at ``now`` is overruled, and never a WebSocket upgrade (the
    connection would outlive the window). The forwarded decision keeps the rules' reason (so it
    is never mistaken for a grant: ``is_observed``), acts in the caller's active tenant
    and grants no roles.
    """
    if decision.allowed or decision.reason not in OBSERVABLE or websocket:
        return None
    if not isinstance(caller, Principal) or not isinstance(match, RouteMatch):
        return None
    if caller.auth_method is AuthMethod.API_KEY:
        return None  # observe mode is for people finding their way; a program's key is not
    until = match.route.observe_until
    if until is None or now >= until:
        return None
    return replace(
        decision,
        allowed=True,
        tenant=caller.active_tenant,
        roles=(),
        explain=(
            *decision.explain,
            f"observe mode until {stamp(until)}: forwarded anyway, the rules would refuse "
            f"({decision.reason.value})",
        ),
        detail="",
    )


def is_observed(decision: Decision) -> bool:
    """Whether an allowed decision was only observed: the rules refused it."""
    return decision.allowed and decision.reason not in ALLOWING_REASONS


def verdict_of(decision: Decision) -> str:
    """The ``decision`` label of a forwarded request's metrics: ``allow`` or ``observed``."""
    return OBSERVED if is_observed(decision) else "allow"


def simulated(decision: Decision) -> Literal["allow", "deny", "observed"]:
    """A decision as ``rules simulate`` reports it: observed requests say so."""
    if not decision.allowed:
        return "deny"
    return "observed" if is_observed(decision) else "allow"


def observed_record(entry: AuditEntry, match: MatchResult) -> AuditEntry:
    """Mark the request record of a request forwarded in observe mode.

    ``entry`` was made from the rules' own refusal (its reason, tenant, objects and
    reason chain); the decision column says ``observed`` so filters and the UI find it.
    """
    entry.data["would_decide"] = entry.decision or "deny"
    entry.data["forwarded"] = True
    until = match.route.observe_until if isinstance(match, RouteMatch) else None
    if until is not None:
        entry.data["observe_until"] = stamp(until)
    entry.decision = OBSERVED
    return entry


async def note_observed(
    gw: Gateway, principal: object, would: Decision, admitted: Admitted, match: MatchResult
) -> float:
    """Count a request forwarded in observe mode, and feed the would-be denial to the
    enumeration defence; returns the slow-down delay to wait before forwarding."""
    route = match.route.name if isinstance(match, RouteMatch) else ""
    key = (route, would.reason.value)
    gw.metrics.observed[key] = gw.metrics.observed.get(key, 0) + 1
    return await observe_denial(gw, principal, would, admitted)


def open_windows(routes: Iterable[Route], now: float) -> list[Window]:
    """Every route observing at ``now``, the soonest to enforce first (a public route
    refuses nobody, so it has nothing to observe)."""
    found = [
        Window(route.name, route.upstream, route.observe_until)
        for route in routes
        if route.observe_until is not None and now < route.observe_until and not route.public
    ]
    return sorted(found, key=lambda window: (window.until, window.route))


def observing_now(gateway: Deciders) -> int:
    """How many routes of ``gateway``'s rules observe now (the metrics gauge)."""
    return len(open_windows(gateway.router.routes, gateway.clock()))


def warn_observing(routes: Iterable[Route], now: float) -> list[Window]:
    """Log a warning naming every route observing now and its expiry (at start and on
    each reload); returns them."""
    windows = open_windows(routes, now)
    for window in windows:
        log.warning(
            "observe mode: route %r (upstream %r) forwards requests the rules refuse "
            "until %s (%s from now); it enforces by itself after that",
            window.route,
            window.upstream,
            window.until_text,
            left(window.until - now),
        )
    return windows


@dataclass(frozen=True, slots=True)
class BannerLine:
    """Routes that stop observing at one time."""

    until: float
    routes: tuple[str, ...]
    """The first ``BANNER_ROUTES`` of them, by name."""
    more: int
    """How many more stop then."""

    @property
    def until_text(self) -> str:
        return stamp(self.until)

    @property
    def until_shown(self) -> str:
        """``2026-12-01 18:00 UTC``: for people."""
        return f"{self.until_text[:10]} {self.until_text[11:16]} UTC"


@dataclass(frozen=True, slots=True)
class Banner:
    """What the admin UI shows on every page while any route observes."""

    lines: tuple[BannerLine, ...]
    """One per expiry, the soonest first."""


def banner(routes: Iterable[Route], now: float) -> Banner | None:
    """The admin banner's content, or ``None`` when no route observes."""
    by_expiry: dict[float, list[str]] = {}
    for window in open_windows(routes, now):
        by_expiry.setdefault(window.until, []).append(window.route)
    if not by_expiry:
        return None
    return Banner(
        tuple(
            BannerLine(until, tuple(names[:BANNER_ROUTES]), max(len(names) - BANNER_ROUTES, 0))
            for until, names in by_expiry.items()
        )
    )
