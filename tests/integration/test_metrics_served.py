"""``/metrics`` on the admin listener only, with upstream, resolver, login, session,
audit queue and process series counted from real traffic.

A real ``gatehold serve`` in front of the demo Ledger: a failed and a successful magic
link sign-in, one invoice read that asks the resolver (a miss) and one the cache answers
(a hit), then Ledger is stopped and a read finds the upstream down. The public port
answers ``/metrics`` like any other unknown path; the admin port serves the counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_cli import gatehold
from tests.support.served import (
    BIND,
    SESSION_COOKIE,
    Ledger,
    ledger_process,
    magic_link_sign_in,
    serving,
    settings_file,
)
from tests.support.servers_base import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    port: int
    admin_port: int
    tmp: Path
    ledger: Ledger


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with ledger_process(tmp_path) as ledger:
        port, admin_port = free_port(), free_port()
        config = settings_file(tmp_path / "gatehold.yaml", ledger, port=port, admin_port=admin_port)
        assert gatehold("tenants", "add", "acme", config=config).returncode == 0
        added = gatehold(
            "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard",
            config=config,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        with serving(config, tmp_path / "serve.log"):
            yield Served(port, admin_port, tmp_path, ledger)


async def _traffic(served: Served) -> tuple[int, str, Samples]:
    """Drive the gateway; returns the public ``/metrics`` answer and the admin scrape."""
    public = f"http://127.0.0.1:{served.port}"
    async with aiohttp.ClientSession(public, cookie_jar=aiohttp.DummyCookieJar()) as client:
        on_public = await client.get("/metrics", allow_redirects=False)
        public_body = await on_public.text()
        forged = await client.post(
            "/.gatehold/login/magic/confirm",
            data={"token": "not-a-real-token", "nonce": "x"},
            headers={"Cookie": f"__Host-gatehold-confirm=forged; {BIND}"},
            allow_redirects=False,
        )
        assert forged.status == 400
        session = await magic_link_sign_in(client, served.tmp / "outbox", "alice@acme.test")
        cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
        for _ in range(2):  # the first asks Ledger who owns invoice 1, the second the cache
            read = await client.get("/api/invoices/1", headers=cookie)
            assert read.status == 200, await read.text()
        served.ledger.process.terminate()
        served.ledger.process.wait(10)
        down = await client.get("/api/invoices", headers=cookie)
        assert down.status == 502, await down.text()
    async with aiohttp.ClientSession() as admin:
        scraped = await admin.get(f"http://127.0.0.1:{served.admin_port}/metrics")
        assert scraped.status == 200
        text = await scraped.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return on_public.status, public_body, samples


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_count_real_traffic_and_only_the_admin_port_serves_them(
    served: Served,
) -> None:
    status, public_body, samples = asyncio.run(_traffic(served))
    # The public listener treats /metrics as an ordinary path nobody may reach.
    assert status in (401, 403, 404), (status, public_body)
    assert "gatehold_" not in public_body
    assert "process_" not in public_body
    # Two answers from Ledger, one refused connection once it was stopped.
    assert _value(samples, "gatehold_upstream_request_seconds_count", upstream="ledger") == 2
    assert (
        _value(samples, "gatehold_upstream_request_seconds_bucket", upstream="ledger", le="+Inf")
        == 2
    )
    assert _value(samples, "gatehold_upstream_errors_total", upstream="ledger", kind="refused") == 1
    assert (
        _value(samples, "gatehold_upstream_errors_total", upstream="ledger", kind="timeout") is None
    )
    # The owner of invoice 1: looked up once, then answered from the cache.
    assert _value(samples, "gatehold_resolver_calls_total", resource="invoice", result="miss") == 1
    assert _value(samples, "gatehold_resolver_calls_total", resource="invoice", result="hit") == 1
    assert (
        _value(samples, "gatehold_resolver_calls_total", resource="invoice", result="error") is None
    )
    # One forged confirmation, one real sign-in.
    assert _value(samples, "gatehold_logins_total", method="magic-link", result="success") == 1
    assert _value(samples, "gatehold_logins_total", method="magic-link", result="failure") == 1
    assert _value(samples, "gatehold_active_sessions") == 1
    assert _value(samples, "gatehold_audit_pending") is not None
    # The process collector, on the gateway's own registry.
    assert (_value(samples, "process_resident_memory_bytes") or 0) > 0
    assert _value(samples, "process_cpu_seconds_total") is not None
