"""Prometheus collectors on an app-owned registry (never the process-global default)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.audit_batch_size = Gauge(
            "gatehold_audit_last_batch_size",
            "Entries committed in the most recent audit transaction.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text format served at ``/metrics``."""
        return generate_latest(self.registry)
