"""Slow request bodies must not starve other callers, nor outlive their limits.

The attack: many chunked POSTs that trickle their body a byte at a time. Each held an
upstream connection for as long as it trickled, so every other request to that
upstream queued behind them. Now a body is read under a pause limit and a deadline,
its first bytes before any upstream connection is taken, streamed uploads share at
most half of the pool, and one caller may have only so many requests in progress.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.store.users import get_user_by_email
from tests.support.stack import Stack, running_stack
from tests.support.trickle import Trickled, trickle
from tests.support.waiting import until

JSON = {"Accept": "application/json"}
OCTETS = {"Content-Type": "application/octet-stream"}
UPLOAD_RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 10s}
roles:
  standard: {can: [read, write]}
routes:
  - name: echo
    match: {path: "/api/echo/{rest:path}"}
    upstream: ledger
  - name: invoice-list
    match: {path: "/api/invoices", methods: [GET]}
    upstream: ledger
  - name: slow
    match: {path: "/slow", methods: [GET]}
    upstream: ledger
"""


def limits(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "upstream_pool": 4,
        "pool_acquire_timeout": 0.5,
        "body_idle_timeout": 0.6,
        "request_total_timeout": 3,
    }
    return {"limits": base | values}


def addr(stack: Stack) -> tuple[str, int]:
    server = stack.client.server
    return str(server.host), int(server.port or 0)


async def timed_get(stack: Stack, email: str, path: str = "/api/invoices") -> tuple[int, float]:
    started = time.monotonic()
    response = await stack.client.get(path, headers=stack.cookie(email) | JSON)
    await response.read()
    return response.status, time.monotonic() - started


async def assert_refused_unforwarded(
    stack: Stack, result: Trickled, status: int, reason: str
) -> None:
    assert result.response is not None, "the gateway closed without an answer"
    assert result.response.status == status, result.response.body
    assert result.response.json()["type"].endswith(reason)
    request_id = result.response.headers["x-request-id"]
    assert (await stack.ledger_hits()).get(request_id, 0) == 0
    rows = await stack.audit_rows(request_id)
    outcomes = [r for r in rows if r["kind"] == "outcome"]
    assert [(o["reason"], o["data"] and status) for o in outcomes] == [(reason, status)]


async def test_a_body_that_stops_arriving_is_answered_408_and_never_forwarded(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **limits()) as stack:
        host, port = addr(stack)
        headers = stack.cookie("alice@acme.test") | JSON
        result = await trickle(host, port, "/t/acme/upload", headers, pieces=0)
        assert result.seconds < 3
        await assert_refused_unforwarded(stack, result, 408, "body-timeout")


async def test_a_body_read_for_its_object_ids_is_under_the_same_limits(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **limits()) as stack:
        host, port = addr(stack)
        headers = stack.cookie("alice@acme.test") | JSON | {"Content-Type": "application/json"}
        for pieces in (0, 50):  # stops at once / trickles past the deadline
            result = await trickle(
                host, port, "/api/invoices/1", headers, method="PUT", first=b"{", pieces=pieces
            )
            assert result.response is not None
            assert result.response.status == 408, result.response.body
            assert result.seconds < 4
            request_id = result.response.headers["x-request-id"]
            assert (await stack.ledger_hits()).get(request_id, 0) == 0
            rows = await stack.audit_rows(request_id)
            assert [(r["kind"], r["reason"]) for r in rows][:1] == [("request", "body-timeout")]


async def held_in_flight(stack: Stack, email: str, count: int) -> None:
    """Until ``count`` requests of ``email`` are counted in flight, however busy the machine."""
    person = await get_user_by_email(stack.app[ENGINE], email)
    assert person is not None
    in_flight = stack.app[GATEWAY].in_flight
    await until(
        lambda: in_flight.count(f"user:{person.id}") >= count, f"{count} requests in flight"
    )


async def test_trickling_bodies_hold_no_upstream_connection_and_end_at_the_deadline(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **limits(in_flight_per_principal=100)) as stack:
        host, port = addr(stack)
        headers = stack.cookie("alice@acme.test") | JSON
        # Twelve bodies trickling a byte every 0.2 s: never idle long enough for the
        # pause limit, so only the total deadline ends them. The pool has 4 connections.
        tricklers = [
            asyncio.ensure_future(trickle(host, port, "/t/acme/upload", headers, every=0.2))
            for _ in range(12)
        ]
        await held_in_flight(stack, "alice@acme.test", 12)
        # Meanwhile another caller's requests to the same upstream answer promptly.
        for _ in range(5):
            status, seconds = await timed_get(stack, "bob@globex.test")
            assert status == 200
            assert seconds < 1.0, f"a GET waited {seconds:.2f}s behind trickling bodies"
        results = await asyncio.gather(*tricklers)
        for result in results:
            assert result.seconds < 5, "a trickling body outlived request_total_timeout"
            await assert_refused_unforwarded(stack, result, 408, "body-timeout")


async def test_streamed_uploads_may_hold_only_half_the_pool(tmp_path: Path) -> None:
    overrides = limits(body_buffer=16, body_idle_timeout=1.5, in_flight_per_principal=100)
    async with running_stack(tmp_path, rules_text=UPLOAD_RULES, **overrides) as stack:
        host, port = addr(stack)
        # A file upload: a body the gateway reads neither for ids nor for a method
        # override (a POST without a Content-Type may be a form holding _method).
        headers = stack.cookie("alice@acme.test") | JSON | OCTETS
        # Past the 16-byte buffer these bodies are streamed upstream (Ledger's echo reads
        # them to the end), then trickle.
        before = await stack.ledger_total()
        uploads = [
            asyncio.ensure_future(
                trickle(host, port, "/api/echo/upload", headers, first=b"z" * 64, every=0.3)
            )
            for _ in range(5)
        ]
        await stack.ledger_reaches(before + 2)  # two uploads hold their upload slots
        for _ in range(5):
            status, seconds = await timed_get(stack, "bob@globex.test")
            assert (status, seconds < 1.0) == (200, True), seconds
        results = await asyncio.gather(*uploads)
        statuses = sorted(r.response.status for r in results if r.response is not None)
        # Two uploads got the two upload slots of the 4-connection pool and ended at the
        # deadline; the other three waited pool_acquire_timeout for a slot and got 504.
        assert statuses == [408, 408, 504, 504, 504]
        for result in results:
            assert result.response is not None
            if result.response.status == 504:
                await assert_refused_unforwarded(stack, result, 504, "upstream-timeout")


async def test_a_callers_request_beyond_the_in_flight_cap_gets_429_unforwarded(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **limits(in_flight_per_principal=3)) as stack:
        host, port = addr(stack)
        headers = stack.cookie("alice@acme.test") | JSON
        held = [
            asyncio.ensure_future(trickle(host, port, "/t/acme/upload", headers, every=0.2))
            for _ in range(3)
        ]
        await held_in_flight(stack, "alice@acme.test", 3)
        before = await stack.ledger_total()
        for path in ("/api/invoices", "/t/acme/anything"):
            response = await stack.client.get(path, headers=headers)
            assert response.status == 429
            body = await response.json()
            assert body["type"].endswith("in-flight-limit")
            request_id = response.headers["X-Request-Id"]
            rows = await stack.audit_rows(request_id)
            assert [(r["kind"], r["decision"], r["reason"]) for r in rows][:1] == [
                ("request", "deny", "in-flight-limit")
            ]
            assert rows[0]["actor"] == "alice@acme.test"
        assert await stack.ledger_total() == before, "a request over the cap reached Ledger"
        # Other callers are not affected; the capped caller is served again afterwards.
        assert (await timed_get(stack, "bob@globex.test"))[0] == 200
        await asyncio.gather(*held)
        assert (await timed_get(stack, "alice@acme.test"))[0] == 200


async def test_waiting_for_a_pooled_upstream_connection_is_bounded(tmp_path: Path) -> None:
    overrides = limits(upstream_pool=2, in_flight_per_principal=100)
    async with running_stack(tmp_path, rules_text=UPLOAD_RULES, **overrides) as stack:
        headers = stack.cookie("alice@acme.test") | JSON
        # Two slow answers hold both pooled connections for 2.5 s, from the moment
        # Ledger has both in hand.
        before = await stack.ledger_total() + 2
        busy = [
            asyncio.ensure_future(stack.client.get("/slow?seconds=2.5", headers=headers))
            for _ in range(2)
        ]
        await stack.ledger_reaches(before)
        status, seconds = await timed_get(stack, "bob@globex.test")
        assert status == 504
        assert seconds < 2.0, f"waited {seconds:.2f}s for a pooled connection"
        assert await stack.ledger_total() == before
        for response in await asyncio.gather(*busy):
            assert response.status == 200
