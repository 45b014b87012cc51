"""Prometheus metrics on an app-owned registry (never the process-global default).

The per-request metrics (decisions, request and stage latencies) are plain counters
owned by the event loop that serves the requests, exported through a collector at
scrape time: ``prometheus_client``'s own histograms take a lock per update, which cost
about 3 µs per observation, nine times per request. Everything that touches them runs
on the one event-loop thread of its process, so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
STAGES = ("ingress", "identity", "route", "decide", "audit_wait", "upstream", "response")


class LoopHistogram:
    """A histogram updated from one event loop only: no lock, one bisect per value."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Per bucket (``le`` each bound, then +Inf), not cumulative."""
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as Prometheus wants them: cumulative, labelled by upper bound."""
        running, buckets = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets


@dataclass(frozen=True, slots=True)
class Stages:
    """``gatehold_stage_seconds``, one histogram per stage.

    ``decide`` covers object ids, their owners and the policy; ``upstream`` lasts until the
    upstream's answer headers arrive; ``response`` is the guard, the relay of the body and
    queueing the outcome.
    """

    ingress: LoopHistogram
    identity: LoopHistogram
    route: LoopHistogram
    decide: LoopHistogram
    audit_wait: LoopHistogram
    upstream: LoopHistogram
    response: LoopHistogram

    @classmethod
    def new(cls) -> Stages:
        return cls(*(LoopHistogram(STAGE_BUCKETS) for _ in STAGES))

    def by_name(self) -> Iterator[tuple[str, LoopHistogram]]:
        for stage in STAGES:
            yield stage, getattr(self, stage)


class Metrics:
    """The gateway's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.enumeration_alerts = Counter(
            "gatehold_enumeration_alerts",
            "Principals blocked for collecting denials on many distinct object ids.",
            registry=self.registry,
        )
        self.stages = Stages.new()
        self.decisions: dict[tuple[str, str, str], int] = {}
        """Answered requests by (route, decision, reason)."""
        self.request_seconds: dict[str, LoopHistogram] = {}
        """Time from arrival to the end of the answer, by decision."""
        self.upstream_seconds: dict[str, LoopHistogram] = {}
        """Time until an upstream's answer headers arrive, by upstream."""
        self.upstream_errors: dict[tuple[str, str], int] = {}
        """Failed upstream requests by (upstream, ``refused``/``timeout``/``5xx``)."""
        self.resolver_calls: dict[tuple[str, str], int] = {}
        """Owner lookups by (resource, ``hit``/``miss``/``error``); ``Ownership`` counts."""
        self.logins: dict[tuple[str, str], int] = {}
        """Sign-ins by (method, ``success``/``failure``)."""
        self.observed: dict[tuple[str, str], int] = {}
        """Requests forwarded in observe mode by (route, the reason the rules would refuse)."""
        self.registry.register(_RequestCollector(self))
        ProcessCollector(registry=self.registry)

    def decided(self, route: str, decision: str, reason: str, seconds: float | None) -> None:
        """Count one answered request; ``seconds`` from arrival, when known."""
        key = (route, decision, reason)
        self.decisions[key] = self.decisions.get(key, 0) + 1
        if seconds is not None:
            timer = self.request_seconds.get(decision)
            if timer is None:
                timer = self.request_seconds[decision] = LoopHistogram(LATENCY_BUCKETS)
            timer.observe(seconds)

    def upstream_answered(self, upstream: str, seconds: float, status: int) -> None:
        """One upstream answer's headers arrived after ``seconds``."""
        timer = self.upstream_seconds.get(upstream)
        if timer is None:
            timer = self.upstream_seconds[upstream] = LoopHistogram(LATENCY_BUCKETS)
        timer.observe(seconds)
        if status >= 500:
            self.upstream_failed(upstream, "5xx")

    def upstream_failed(self, upstream: str, kind: str) -> None:
        """``kind``: ``refused``, ``timeout``, ``invalid`` (not HTTP), ``reset`` (cut mid-body)
        or ``5xx``."""
        key = (upstream, kind)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1

    def logged_in(self, method: str, succeeded: bool) -> None:
        key = (method, "success" if succeeded else "failure")
        self.logins[key] = self.logins.get(key, 0) + 1

    def watch_sessions(self, count: Callable[[], int]) -> None:
        """``gatehold_active_sessions``: ``count()`` is called on each scrape."""
        self.registry.register(_GaugeOnScrape("gatehold_active_sessions", _SESSIONS_HELP, count))

    def watch_observing(self, count: Callable[[], int]) -> None:
        """``gatehold_observing_routes``: ``count()`` is called on each scrape."""
        self.registry.register(_GaugeOnScrape("gatehold_observing_routes", _OBSERVING_HELP, count))

    def watch_audit(self, writer: AuditCounters) -> None:
        """Export the audit writer's own counters, read at scrape time."""
        self.registry.register(_AuditCollector(writer))

    def exposition(self) -> bytes:
        """The text format served at ``/metrics``."""
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        decisions = CounterMetricFamily(
            "gatehold_decisions",
            "Requests by route, verdict and reason code.",
            labels=["route", "decision", "reason"],
        )
        for key, count in sorted(m.decisions.items()):
            decisions.add_metric(list(key), count)
        yield decisions
        yield _histograms(
            "gatehold_request_seconds",
            "Time from arrival to the end of the answer.",
            "decision",
            sorted(m.request_seconds.items()),
        )
        yield _histograms(
            "gatehold_stage_seconds",
            "Time spent in each pipeline stage of one request.",
            "stage",
            list(m.stages.by_name()),
        )
        yield _histograms(
            "gatehold_upstream_request_seconds",
            "Time from sending a request upstream until its answer headers arrive.",
            "upstream",
            sorted(m.upstream_seconds.items()),
        )
        yield _counters(
            "gatehold_upstream_errors",
            "Upstream requests refused, timed out or answered with a 5xx status.",
            ["upstream", "kind"],
            m.upstream_errors,
        )
        yield _counters(
            "gatehold_resolver_calls",
            "Owner lookups by resource: answered from the cache, looked up, or failed.",
            ["resource", "result"],
            m.resolver_calls,
        )
        yield _counters(
            "gatehold_logins",
            "Interactive sign-ins by method and result.",
            ["method", "result"],
            m.logins,
        )
        yield _counters(
            "gatehold_observed_requests",
            "Requests forwarded in observe mode that the rules would refuse, by route and "
            "the refusal's reason.",
            ["route", "would"],
            m.observed,
        )


_OBSERVING_HELP = "Routes in observe mode now: refusals forwarded, enforced after expiry."
_SESSIONS_HELP = "Sessions in this process's cache: signed in and used within the cache period."


class _GaugeOnScrape(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name, self._documentation, self._read = name, documentation, read

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._name, self._documentation, self._read())


def _counters(
    name: str, documentation: str, labels: list[str], counts: dict[tuple[str, str], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, count in sorted(counts.items()):
        family.add_metric(list(key), count)
    return family


def _histograms(
    name: str, documentation: str, label: str, series: list[tuple[str, LoopHistogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in series:
        family.add_metric([value], histogram.cumulative(), histogram.total)
    return family


class AuditCounters(Protocol):
    """What the audit writer reports about itself (``gateway.audit.AuditWriter``)."""

    @property
    def batches_committed(self) -> int: ...
    @property
    def entries_committed(self) -> int: ...
    @property
    def last_batch_size(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def records_dropped(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def checkpoint_failures(self) -> int: ...


class _AuditCollector(Collector):
    def __init__(self, writer: AuditCounters) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        w = self._writer
        yield CounterMetricFamily(
            "gatehold_audit_batches", "Audit transactions committed.", w.batches_committed
        )
        yield CounterMetricFamily(
            "gatehold_audit_entries", "Audit entries committed.", w.entries_committed
        )
        yield CounterMetricFamily(
            "gatehold_audit_failures",
            "Audit transactions that failed (every request in them got 503).",
            w.failures,
        )
        yield CounterMetricFamily(
            "gatehold_audit_records_dropped",
            "After-the-fact records (outcomes, events) lost to a failed commit.",
            w.records_dropped,
        )
        yield GaugeMetricFamily(
            "gatehold_audit_last_batch_size",
            "Entries in the most recent audit transaction.",
            w.last_batch_size,
        )
        yield GaugeMetricFamily(
            "gatehold_audit_pending", "Audit entries waiting for a transaction.", w.pending
        )
        yield CounterMetricFamily(
            "gatehold_audit_checkpoint_failures",
            "Audit checkpoints that could not be written outside the database.",
            w.checkpoint_failures,
        )
