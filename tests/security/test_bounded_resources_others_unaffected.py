"""Every resource limit refuses the one who goes past it, and only them.

The attacks: one address holding requests in progress under many credentials (stolen
or minted sessions), behind a trusted proxy or not; one address opening connections;
oversized or too many request headers; a body over its route's limit; callers taking
every pooled connection to an upstream. Each refused request gets a clear answer
(status, problem type, ``Retry-After`` on a 429), an audit row, and never reaches the
app — while another person or another address is served normally at the same moment.

Other addresses are real: the clients bind ``127.0.0.2``/``.3``/``.4`` as their source
(the whole ``127.0.0.0/8`` is loopback on Linux); ``127.0.0.4`` is a trusted proxy.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from gateway.context import GATEWAY
from gateway.server import CONNECTIONS, HEAD_LIMITS
from tests.support.rawhttp import RawResponse, parse_response
from tests.support.stack import Stack, running_stack

JSON = {"Accept": "application/json"}
PROXY = "127.0.0.4"
RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 20s}
  annex: {url: "${LEDGER_URL}", timeout: 20s}
roles:
  admin: {can: [read, write]}
  standard: {can: [read, write]}
  readonly: {can: [read]}
  operator: {can: [read, write], scope: global}
routes:
  - name: invoice-list
    match: {path: "/api/invoices", methods: [GET]}
    upstream: ledger
  - name: slow
    match: {path: "/slow", methods: [GET]}
    upstream: ledger
  - name: small-upload
    match: {path: "/api/echo/small", methods: [POST]}
    upstream: ledger
    max_body: 1KiB
  - name: annex
    match: {path: "/api/echo/annex", methods: [GET]}
    upstream: annex
"""
HOLD_SECONDS = 6.0
"""How long a held request stays in progress: far longer than the checks made meanwhile."""


@asynccontextmanager
async def bounded_stack(tmp_path: Path, **limits: Any) -> AsyncIterator[Stack]:
    server = {"public_url": "http://gatehold.test", "trusted_proxies": [f"{PROXY}/32"]}
    async with running_stack(tmp_path, rules_text=RULES, server=server, limits=limits) as stack:
        yield stack


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


class Answer:
    """One answer, read to the end."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


async def call(stack: Stack, session: aiohttp.ClientSession, path: str, **headers: str) -> Answer:
    async with session.get(stack.client.make_url(path), headers=JSON | headers) as response:
        return Answer(response.status, CIMultiDict(response.headers), await response.read())


def who(stack: Stack, email: str) -> dict[str, str]:
    return stack.cookie(email)


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` (maybe a coroutine) to hold, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def refused_unforwarded(
    stack: Stack, answer: Answer | RawResponse, status: int, reason: str, kind: str = "request"
) -> dict[str, Any]:
    """Assert a refusal: status, problem type, no hit on Ledger, a deny audit row."""
    body = answer.body if isinstance(answer.body, bytes) else bytes(answer.body)
    assert answer.status == status, body[:300]
    headers = {k.lower(): v for k, v in answer.headers.items()}
    assert headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = parse_json(body)
    assert problem["type"] == f"/.gatehold/problems/{reason}", problem
    if status == 429:
        assert int(headers["retry-after"]) > 0
    request_id = headers["x-request-id"]
    assert (await stack.ledger_hits()).get(request_id, 0) == 0, "the refused one was forwarded"
    rows = await stack.audit_rows(request_id)
    assert rows, "no audit row"
    refused = [r for r in rows if r["reason"] == reason]
    assert [r["kind"] for r in refused] == [kind], rows
    row = refused[0] | {"data": json.loads(rows[0]["data"])}
    return row


def parse_json(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


def hold(
    stack: Stack, session: aiohttp.ClientSession, email: str, **headers: str
) -> Awaitable[Answer]:
    """A request of ``email`` that stays in progress for ``HOLD_SECONDS``."""
    cookie = who(stack, email)
    return asyncio.ensure_future(
        call(stack, session, f"/slow?seconds={HOLD_SECONDS}", **cookie, **headers)
    )


async def test_one_address_is_capped_in_flight_whoever_it_signs_in_as(tmp_path: Path) -> None:
    """Per caller 2, per address 3: three people from one address fill it; a fourth
    person there is refused, while the same people elsewhere are served at once."""
    async with (
        bounded_stack(tmp_path, in_flight_per_principal=2, in_flight_per_client=3) as stack,
        client_from("127.0.0.2") as lan,
        client_from(PROXY) as proxy,
    ):
        counts = stack.app[GATEWAY].in_flight
        behind = {"X-Forwarded-For": "203.0.113.5"}
        started = await stack.ledger_total()
        held = [
            hold(stack, lan, "alice@acme.test"),
            hold(stack, lan, "alice@acme.test"),
            hold(stack, lan, "bob@globex.test"),
            hold(stack, proxy, "carol@acme.test", **behind),
            hold(stack, proxy, "carol@acme.test", **behind),
            hold(stack, proxy, "admin@example.test", **behind),
        ]
        await until(lambda: counts.count("address:127.0.0.2") == 3, "three held from .2")
        await until(lambda: counts.count("address:203.0.113.5") == 3, "three held behind")

        async def all_arrived() -> bool:
            return await stack.ledger_total() == started + len(held)

        await until(all_arrived, "the held requests reached Ledger")
        before = started + len(held)
        refused = {
            "a fourth person from the full address": (lan, "rita@acme.test", {}),
            "anonymous from the full address": (lan, None, {}),
            "a fourth person behind the proxy": (proxy, "rita@acme.test", behind),
        }
        failures: list[str] = []
        for case, (session, email, extra) in refused.items():
            cookie = who(stack, email) if email else {}
            answer = await call(stack, session, "/api/invoices", **cookie, **extra)
            try:
                row = await refused_unforwarded(stack, answer, 429, "in-flight-limit")
                assert row["actor"] == (email or "anonymous")
                assert row["data"]["client"] == ("203.0.113.5" if extra else "127.0.0.2")
                assert "client address" in parse_json(answer.body)["detail"]
            except AssertionError as failed:
                failures.append(f"{case}: {failed}")
        assert await stack.ledger_total() == before, "a refused request reached Ledger"
        # The same people, at the same moment, from elsewhere: served.
        served = {
            "the refused person from another address": (stack.client.session, "rita@acme.test", {}),
            "another person from another address": (stack.client.session, "admin@example.test", {}),
            "another client behind the same proxy": (
                proxy,
                "bob@globex.test",
                {"X-Forwarded-For": "203.0.113.6"},
            ),
            "the proxy itself (no client named)": (proxy, "rita@acme.test", {}),
        }
        for case, (session, email, extra) in served.items():
            answer = await call(stack, session, "/api/invoices", **who(stack, email), **extra)
            if answer.status != 200:
                failures.append(f"{case}: {answer.status} {answer.body[:200]!r}")
        assert not failures, "\n".join(failures)
        assert [a.status for a in await asyncio.gather(*held)] == [200] * 6
        await until(lambda: counts.count("address:127.0.0.2") == 0, "the address released")
        again = await call(stack, lan, "/api/invoices", **who(stack, "rita@acme.test"))
        assert again.status == 200


async def raw_exchange(address: str, port: int, data: bytes) -> RawResponse:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    try:
        writer.write(data)
        await writer.drain()
        return parse_response(await asyncio.wait_for(reader.read(), timeout=10))
    finally:
        writer.close()


async def test_one_address_past_its_connections_leaves_others_connected(tmp_path: Path) -> None:
    async with bounded_stack(tmp_path, connections_per_client=3) as stack:
        port = int(stack.client.server.port or 0)
        held = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
            for _ in range(3)
        ]
        guard = stack.app[CONNECTIONS]
        await until(lambda: guard.open_from("127.0.0.3") == 3, "three connections counted")
        try:
            refused = await raw_exchange(
                "127.0.0.3", port, b"GET /api/invoices HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            row = await refused_unforwarded(stack, refused, 429, "connection-limit", "rejected")
            assert row["data"]["client"] == "127.0.0.3"
            # Another address, at the same moment: a signed-in request is forwarded.
            answer = await call(
                stack, stack.client.session, "/api/invoices", **who(stack, "alice@acme.test")
            )
            assert answer.status == 200
            assert (await stack.ledger_hits()).get(answer.headers["X-Request-Id"]) == 1
            # And the address's own held connections still work.
            reader, writer = held[0]
            writer.write(b"GET /.gatehold/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            assert parse_response(await asyncio.wait_for(reader.read(), 10)).status == 200
        finally:
            for _, writer in held:
                writer.close()


def head(*lines: str) -> bytes:
    return (
        "\r\n".join(["GET /api/invoices HTTP/1.1", "Host: gatehold.test", *lines]) + "\r\n\r\n"
    ).encode()


FIELD = HEAD_LIMITS["max_field_size"]
COUNT = HEAD_LIMITS["max_headers"]
OVERSIZED_HEADS = {
    "one header value past the field limit": head("X-Filler: " + "a" * (FIELD + 10)),
    "a header name past the field limit": head("X-" + "n" * (FIELD + 10) + ": 1"),
    "one header more than allowed": head(*(f"X-H{i}: {i}" for i in range(COUNT))),
    "ten thousand tiny headers": head(*(f"X-H{i}: {i}" for i in range(10_000))),
    "a request line past the line limit": (
        b"GET /api/invoices?q=" + b"q" * HEAD_LIMITS["max_line_size"] + b" HTTP/1.1\r\n\r\n"
    ),
}


async def test_oversized_request_heads_get_an_audited_400_while_others_are_served(
    tmp_path: Path,
) -> None:
    async with bounded_stack(tmp_path) as stack, client_from("127.0.0.2") as lan:
        port = int(stack.client.server.port or 0)
        started = await stack.ledger_total()
        slow = hold(stack, lan, "bob@globex.test")  # another caller, mid-request throughout

        async def slow_arrived() -> bool:
            return await stack.ledger_total() == started + 1

        await until(slow_arrived, "the other caller's request reached Ledger")
        before = started + 1
        failures: list[str] = []
        for case, data in OVERSIZED_HEADS.items():
            try:
                answer = await raw_exchange("127.0.0.3", port, data)
                row = await refused_unforwarded(stack, answer, 400, "request-malformed", "rejected")
                assert row["data"]["client"] == "127.0.0.3"
                if "request line" not in case:
                    assert f"at most {COUNT} headers" in answer.json()["detail"]
                assert b"aaaa" not in answer.body and b"nnnn" not in answer.body
            except (AssertionError, ConnectionError, TimeoutError) as failed:
                failures.append(f"{case}: {failed!r}")
        assert not failures, "\n".join(failures)
        assert await stack.ledger_total() == before
        # At the limit is served; the other caller's request finished normally.
        at_limit = head(
            "Accept: application/json",
            "Connection: close",
            "X-Filler: " + "a" * (FIELD - 100),
            *(f"X-H{i}: {i}" for i in range(COUNT - 5)),
        )
        assert (await raw_exchange("127.0.0.3", port, at_limit)).status == 401
        assert (await slow).status == 200


async def test_a_body_over_its_routes_limit_is_refused_while_another_upload_passes(
    tmp_path: Path,
) -> None:
    async with bounded_stack(tmp_path) as stack:
        octets = {"Content-Type": "application/octet-stream"} | JSON

        async def post(email: str, body: Any) -> Answer:
            headers = who(stack, email) | octets
            async with stack.client.session.post(
                stack.client.make_url("/api/echo/small"), data=body, headers=headers
            ) as response:
                return Answer(response.status, CIMultiDict(response.headers), await response.read())

        async def chunked(size: int) -> AsyncIterator[bytes]:
            for _ in range(size // 256):
                yield b"z" * 256
                await asyncio.sleep(0.01)

        fits = asyncio.ensure_future(post("bob@globex.test", chunked(1024)))
        # Declared or chunked, a body past max_body is refused before any upstream
        # connection is taken (the first body_buffer bytes are read first): audited as
        # allowed, then the outcome says why.
        for body in (b"x" * 4096, chunked(4096)):
            too_big = await post("alice@acme.test", body)
            await refused_unforwarded(stack, too_big, 413, "body-too-large", "outcome")
        answer = await fits
        assert answer.status == 200
        assert (await stack.ledger_hits()).get(answer.headers["X-Request-Id"]) == 1


async def test_a_full_upstream_pool_answers_504_and_other_upstreams_are_served(
    tmp_path: Path,
) -> None:
    limits = {"upstream_pool": 2, "pool_acquire_timeout": 0.5, "in_flight_per_principal": 100}
    async with bounded_stack(tmp_path, **limits) as stack:
        sessions = stack.client.session
        before = await stack.ledger_total()
        held = [hold(stack, sessions, "alice@acme.test"), hold(stack, sessions, "carol@acme.test")]

        async def both_upstream() -> bool:
            return await stack.ledger_total() == before + 2

        await until(both_upstream, "both slow requests reached Ledger (the pool is full)")
        waited = await call(stack, sessions, "/api/invoices", **who(stack, "bob@globex.test"))
        assert waited.status == 504, waited.body
        request_id = waited.headers["X-Request-Id"]
        assert (await stack.ledger_hits()).get(request_id, 0) == 0
        rows = await stack.audit_rows(request_id)
        outcomes = [r["reason"] for r in rows if r["kind"] == "outcome"]
        assert outcomes == ["upstream-timeout"], rows
        assert parse_json(waited.body)["type"] == "/.gatehold/problems/upstream-timeout"
        # Another upstream (its own pool, the same app behind) is served at once.
        other = await call(stack, sessions, "/api/echo/annex", **who(stack, "bob@globex.test"))
        assert other.status == 200
        assert [a.status for a in await asyncio.gather(*held)] == [200, 200]
