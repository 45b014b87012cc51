"""Prometheus collectors on an app-owned registry (never the process-global default)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
STAGES = ("ingress", "identity", "route", "decide", "audit_wait", "upstream", "response")


@dataclass(frozen=True, slots=True)
class Stages:
    """``gatehold_stage_seconds`` bound to each stage once, so observing one is all it costs.

    ``decide`` covers object ids, their owners and the policy; ``upstream`` lasts until the
    upstream's answer headers arrive; ``response`` is the guard, the relay of the body and
    queueing the outcome.
    """

    ingress: Histogram
    identity: Histogram
    route: Histogram
    decide: Histogram
    audit_wait: Histogram
    upstream: Histogram
    response: Histogram

    @classmethod
    def of(cls, histogram: Histogram) -> Stages:
        return cls(*(histogram.labels(stage) for stage in STAGES))


class Metrics:
    """The gateway's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "gatehold_decisions",
            "Requests by route, verdict and reason code.",
            ["route", "decision", "reason"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gatehold_request_seconds",
            "Time from arrival to the end of the answer.",
            ["decision"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.enumeration_alerts = Counter(
            "gatehold_enumeration_alerts",
            "Principals blocked for collecting denials on many distinct object ids.",
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "gatehold_stage_seconds",
            "Time spent in each pipeline stage of one request.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.stages = Stages.of(self.stage_seconds)
        self._decision_children: dict[tuple[str, str, str], Counter] = {}
        self._seconds_children: dict[str, Histogram] = {}

    def decided(self, route: str, decision: str, reason: str, seconds: float | None) -> None:
        """Count one answered request; ``seconds`` from arrival, when known.

        Label children are looked up once per label set and kept, so a request pays for
        the increments only.
        """
        key = (route, decision, reason)
        counter = self._decision_children.get(key)
        if counter is None:
            counter = self._decision_children[key] = self.decisions.labels(*key)
        counter.inc()
        if seconds is not None:
            timer = self._seconds_children.get(decision)
            if timer is None:
                timer = self._seconds_children[decision] = self.request_seconds.labels(decision)
            timer.observe(seconds)

    def watch_audit(self, writer: AuditCounters) -> None:
        """Export the audit writer's own counters, read at scrape time."""
        self.registry.register(_AuditCollector(writer))

    def exposition(self) -> bytes:
        """The text format served at ``/metrics``."""
        return generate_latest(self.registry)


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
