"""Observe mode in the rules file: which routes observe, until when, and what is refused.

An upstream or a route in ``mode: observe`` forwards the refusals of signed-in people
and audits the decision the rules would have taken (``gateway/observe.py``). It is a
deliberate hole in default deny (I1), so the rules keep it bounded:

* ``mode: observe`` needs ``observe_until``, an absolute time with its zone. An absolute
  time, not a duration from activation: it means the same after a restart, a reload or
  on another replica, and the file says when enforcing starts.
* ``observe_until`` at most ``MAX_OBSERVE_DAYS`` ahead when the rules are loaded.
* ``observe_until`` without ``mode: observe`` is refused too: it would do nothing, and
  its author surely meant something.

A time already past is valid (the route simply enforces): ``gatehold rules check``
warns about it (lint ``observe-ended``), as it warns about every open window
(``observe-mode``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.config.rules import RouteModel, UpstreamModel

MAX_OBSERVE_DAYS = 30
MAX_OBSERVE_SECONDS = MAX_OBSERVE_DAYS * 86400.0


def stamp(ts: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the second: ``2026-12-01T18:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def left(seconds: float) -> str:
    """A remaining time, roughly: ``3d 4h``, ``5h 10m``, ``2m 5s``."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def window_problems(
    mode: str | None, until: datetime | None, *, what: str, now: float
) -> list[tuple[str, str]]:
    """``(field, message)`` for each thing wrong with one observe window; ``what`` names
    its owner (``route 'invoice-read'``, ``upstream 'ledger'``)."""
    if mode == "observe" and until is None:
        return [
            (
                "mode",
                f"{what} is in mode: observe without observe_until — observe mode must end by "
                "itself: add observe_until, a time with its zone (e.g. "
                f"{stamp(now + 7 * 86400)}), at most {MAX_OBSERVE_DAYS} days ahead",
            )
        ]
    if until is None:
        return []
    if mode != "observe":
        return [
            (
                "observe_until",
                f"{what} has observe_until but is not in mode: observe — add 'mode: observe' "
                "or remove observe_until",
            )
        ]
    if until.timestamp() - now > MAX_OBSERVE_SECONDS:
        return [
            (
                "observe_until",
                f"{what} would observe until {stamp(until.timestamp())}, more than "
                f"{MAX_OBSERVE_DAYS} days ahead — observe mode is bounded: choose a time "
                f"before {stamp(now + MAX_OBSERVE_SECONDS)}",
            )
        ]
    return []


def route_window(route: RouteModel, upstream: UpstreamModel | None) -> float | None:
    """Until when ``route`` observes (Unix time), or ``None`` when it enforces.

    A route's own ``mode`` wins; a route that names none takes its upstream's.
    """
    if route.mode == "enforce":
        return None
    if route.mode == "observe":
        return route.observe_until.timestamp() if route.observe_until is not None else None
    if upstream is not None and upstream.mode == "observe" and upstream.observe_until:
        return upstream.observe_until.timestamp()
    return None
