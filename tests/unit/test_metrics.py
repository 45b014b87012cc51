"""The loop-local metrics export exactly what Prometheus histograms and counters would."""

from __future__ import annotations

from gateway.metrics import STAGE_BUCKETS, LoopHistogram, Metrics


def test_values_land_in_the_first_bucket_whose_bound_they_do_not_exceed() -> None:
    histogram = LoopHistogram(STAGE_BUCKETS)
    for value in (0.00005, 0.00006, 0.001, 7.0):
        histogram.observe(value)
    buckets = dict(histogram.cumulative())
    assert buckets["5e-05"] == 1.0  # le: a value equal to the bound counts in it
    assert buckets["0.0001"] == 2.0
    assert buckets["0.001"] == 3.0
    assert buckets["1.0"] == 3.0 and buckets["+Inf"] == 4.0
    assert histogram.total == 0.00005 + 0.00006 + 0.001 + 7.0


def test_the_exposition_has_counters_and_histograms_by_label() -> None:
    metrics = Metrics()
    metrics.decided("invoice-read", "allow", "role-allows", 0.002)
    metrics.decided("invoice-read", "allow", "role-allows", 0.004)
    metrics.decided("", "deny", "target-ambiguous", None)
    metrics.stages.audit_wait.observe(0.0004)
    text = metrics.exposition().decode()
    assert (
        'gatehold_decisions_total{decision="allow",reason="role-allows",route="invoice-read"} 2.0'
        in text
    )
    assert (
        'gatehold_decisions_total{decision="deny",reason="target-ambiguous",route=""} 1.0' in text
    )
    assert 'gatehold_request_seconds_count{decision="allow"} 2.0' in text
    assert 'gatehold_request_seconds_sum{decision="allow"} 0.006' in text
    assert 'gatehold_request_seconds_count{decision="deny"}' not in text  # no time was known
    assert 'gatehold_stage_seconds_bucket{le="0.0005",stage="audit_wait"} 1.0' in text
    assert 'gatehold_stage_seconds_count{stage="ingress"} 0.0' in text


def test_upstream_answers_and_failures_are_counted_by_upstream_and_kind() -> None:
    metrics = Metrics()
    metrics.upstream_answered("ledger", 0.003, 200)
    metrics.upstream_answered("ledger", 0.004, 503)
    metrics.upstream_failed("ledger", "timeout")
    metrics.logged_in("oidc", succeeded=False)
    metrics.watch_sessions(lambda: 7)
    text = metrics.exposition().decode()
    assert 'gatehold_upstream_request_seconds_count{upstream="ledger"} 2.0' in text
    assert 'gatehold_upstream_errors_total{kind="5xx",upstream="ledger"} 1.0' in text
    assert 'gatehold_upstream_errors_total{kind="timeout",upstream="ledger"} 1.0' in text
    assert 'gatehold_upstream_errors_total{kind="refused"' not in text
    assert 'gatehold_logins_total{method="oidc",result="failure"} 1.0' in text
    assert "gatehold_active_sessions 7.0" in text
    assert "process_cpu_seconds_total" in text
