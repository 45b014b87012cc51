"""The audit records of observe windows: one per load, one per end, never repeated."""

from __future__ import annotations

import asyncio
import time

from gateway.model import AuditEntry, Route
from gateway.observe_trail import ENDED_KIND, OBSERVING_KIND, ObserveTrail

HOUR = 3600.0


class Recorded:
    """A stand-in for the audit writer: keeps what it is given."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def of(self, kind: str) -> list[AuditEntry]:
        return [entry for entry in self.entries if entry.kind == kind]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def route(name: str, until: float | None, *, public: bool = False) -> Route:
    return Route(name, f"/{name}", None, "app", public=public, observe_until=until)


def named(entry: AuditEntry) -> list[str]:
    return [window["route"] for window in entry.data["windows"]]


async def test_each_load_is_recorded_once_and_a_kept_window_does_not_end() -> None:
    audit, clock = Recorded(), Clock(1_800_000_000.0)
    trail = ObserveTrail(audit, clock)
    routes = [
        route("a", clock.now + HOUR),
        route("b", None),
        route("p", clock.now + HOUR, public=True),
    ]
    try:
        assert [w.route for w in trail.loaded(routes, source="start")] == ["a"]
        trail.loaded(routes, source="reload")
        assert [e.data["source"] for e in audit.of(OBSERVING_KIND)] == ["start", "reload"]
        assert [named(e) for e in audit.of(OBSERVING_KIND)] == [["a"], ["a"]]
        assert audit.of(ENDED_KIND) == []
        assert audit.of(OBSERVING_KIND)[0].actor == "gatehold"
    finally:
        trail.close()


async def test_rules_without_open_windows_write_nothing() -> None:
    audit, clock = Recorded(), Clock(1_800_000_000.0)
    trail = ObserveTrail(audit, clock)
    trail.loaded([route("a", None), route("past", clock.now - 1)])
    assert audit.entries == []


async def test_a_load_that_drops_a_window_ends_it_and_one_that_passed_expired() -> None:
    audit, clock = Recorded(), Clock(1_800_000_000.0)
    trail = ObserveTrail(audit, clock)
    try:
        trail.loaded([route("a", clock.now + 10), route("b", clock.now + HOUR)])
        clock.now += 20  # a's window passed while the timer had not fired yet
        trail.loaded([route("a", clock.now - 10), route("c", clock.now + HOUR)])
        ended = audit.of(ENDED_KIND)
        assert [(e.data["why"], named(e)) for e in ended] == [
            ("expired", ["a"]),
            ("rules-changed", ["b"]),
        ]
        assert named(audit.of(OBSERVING_KIND)[-1]) == ["c"]
    finally:
        trail.close()


async def test_the_end_of_a_window_is_recorded_once_when_it_passes() -> None:
    audit = Recorded()
    trail = ObserveTrail(audit, time.time)
    try:
        trail.loaded([route("soon", time.time() + 0.1), route("later", time.time() + HOUR)])
        await asyncio.sleep(0.4)
        (ended,) = audit.of(ENDED_KIND)
        assert (ended.data["why"], named(ended)) == ("expired", ["soon"])
        assert [w.route for w in trail.open] == ["later"]
    finally:
        trail.close()


async def test_a_closed_trail_records_nothing_more() -> None:
    audit = Recorded()
    trail = ObserveTrail(audit, time.time)
    trail.loaded([route("soon", time.time() + 0.05)])
    trail.close()
    await asyncio.sleep(0.2)
    assert audit.of(ENDED_KIND) == []
