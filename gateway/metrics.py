"""Prometheus collectors on an app-owned registry (never the process-global default)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


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
        self.audit_batch_size = Gauge(
            "gatehold_audit_last_batch_size",
            "Entries committed in the most recent audit transaction.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text format served at ``/metrics``."""
        return generate_latest(self.registry)
