"""Observe mode in the audit trail: when a process starts observing, and when it stops.

Requests forwarded in observe mode are audited one by one (``observe.py``); this module
records the windows themselves, so the trail says when the hole in default deny opened
and closed even on days nobody hit it:

* ``rules-observing``: each time a process loads rules with a route observing (at
  start, on a reload or SIGHUP, when it follows a newly activated stored version), one
  record naming every observing route, its upstream and its ``observe_until``;
* ``rules-observe-ended``: when windows this process had open close, once, with
  ``why``: ``expired`` (the time passed and the routes enforce by themselves) or
  ``rules-changed`` (a load no longer observes them).

Records are per process (each names its ``pid``): with ``--workers N`` or several
replicas, each process writes its own. A process that starts after a window has
passed writes nothing about it: the ``rules-observing`` record of the process that
had it open said when it would end.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

from gateway.audit import event_entry
from gateway.model import AuditEntry, Route
from gateway.observe import Window, open_windows

log = logging.getLogger("gatehold")

OBSERVING_KIND = "rules-observing"
ENDED_KIND = "rules-observe-ended"
ACTOR = "gatehold"


class Recorder(Protocol):
    def record(self, entry: AuditEntry) -> None: ...


def _listed(windows: Iterable[Window]) -> list[dict[str, str]]:
    return [
        {"route": w.route, "upstream": w.upstream, "observe_until": w.until_text} for w in windows
    ]


def observing_entry(windows: list[Window], **details: Any) -> AuditEntry:
    """The record of a load with open windows (``details``: source, digest, version…)."""
    return event_entry(
        OBSERVING_KIND, actor=ACTOR, windows=_listed(windows), pid=os.getpid(), **details
    )


def ended_entry(windows: list[Window], why: Literal["expired", "rules-changed"]) -> AuditEntry:
    """The record of windows this process had open and no longer has."""
    return event_entry(ENDED_KIND, actor=ACTOR, windows=_listed(windows), why=why, pid=os.getpid())


class ObserveTrail:
    """One process's record of its open observe windows (one per process, ``app.py``)."""

    def __init__(self, audit: Recorder, clock: Callable[[], float]) -> None:
        self._audit = audit
        self._clock = clock
        self._open: dict[str, Window] = {}
        """The windows of the last load still open, by route."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> list[Window]:
        return sorted(self._open.values(), key=lambda w: (w.until, w.route))

    def loaded(self, routes: Iterable[Route], **details: Any) -> list[Window]:
        """Rules were loaded: record their open windows, and the end of those they drop.

        Call once per load; returns the windows open now.
        """
        now = self._clock()
        self._expire(now)  # ends that passed before this load: not the load's doing
        windows = open_windows(routes, now)
        kept = {w.route for w in windows}
        dropped = [w for w in self.open if w.route not in kept]
        if dropped:
            self._audit.record(ended_entry(dropped, "rules-changed"))
        if windows:
            self._audit.record(observing_entry(windows, **details))
        self._open = {w.route: w for w in windows}
        self._schedule()
        return windows

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self.close()
        if self._open:
            delay = max(min(w.until for w in self._open.values()) - self._clock(), 0.0)
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._expire(self._clock())
        self._schedule()  # woken a little early by the gateway's clock: waits the rest

    def _expire(self, now: float) -> bool:
        """Record the windows that ended by ``now``; whether there were any."""
        ended = [w for w in self.open if w.until <= now]
        if not ended:
            return False
        for window in ended:
            del self._open[window.route]
        log.warning(
            "observe mode ended: %s enforce the rules from now (observe_until %s)",
            ", ".join(repr(w.route) for w in ended),
            ", ".join(sorted({w.until_text for w in ended})),
        )
        self._audit.record(ended_entry(ended, "expired"))
        return True
