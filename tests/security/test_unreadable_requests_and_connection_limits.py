"""Requests aiohttp's parser refuses, slow request heads, and connection floods.

The attacks: an oversized ``Cookie`` header was answered with a 400 that repeated the
start of the cookie; requests the parser refused left no audit record; a client sending
one header byte every few seconds kept its connection for an hour; one address could
open connections without limit.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime import start_gateway
from gateway.server import CONNECTIONS
from tests.support.rawhttp import parse_response
from tests.support.servers_base import free_port
from tests.support.stack import Stack, demo_settings, ledger_server, running_stack
from tests.support.waiting import until

SECRET = "s3cr3t-session-value-"


def addr(stack: Stack) -> tuple[str, int]:
    server = stack.client.server
    return str(server.host), int(server.port or 0)


async def send_raw(stack: Stack, data: bytes) -> bytes:
    host, port = addr(stack)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


UNREADABLE = {
    "nul-in-target": b"GET /api/\x00invoices HTTP/1.1\r\nHost: gatehold.test\r\n\r\n",
    "raw-utf8-in-target": b"GET /api/\xc3\xa9 HTTP/1.1\r\nHost: gatehold.test\r\n\r\n",
    "asterisk-target": b"GET * HTTP/1.1\r\nHost: gatehold.test\r\n\r\n",
    "unknown-method": b"GETT\x01 /api/invoices HTTP/1.1\r\nHost: gatehold.test\r\n\r\n",
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "oversized-cookie": (
        b"GET /api/invoices HTTP/1.1\r\nHost: gatehold.test\r\nCookie: __Host-gatehold="
        + (SECRET * 600).encode()
        + b"\r\n\r\n"
    ),
    "oversized-target": b"GET /" + (SECRET * 600).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-header-line": b"GET / HTTP/1.1\r\nHost: x\r\n" + SECRET.encode() + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
async def test_requests_the_parser_refuses_get_the_gateways_audited_400(
    tmp_path: Path, name: str
) -> None:
    async with running_stack(tmp_path) as stack:
        before = await stack.ledger_total()
        data = await send_raw(stack, UNREADABLE[name])
        response = parse_response(data)
        assert response.status == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "/.gatehold/problems/request-malformed"
        assert SECRET.encode() not in data, "the answer repeats the request's input"
        assert b"Traceback" not in data
        rows = await stack.audit_rows(problem["request_id"])
        assert [(r["kind"], r["reason"]) for r in rows] == [("rejected", "request-malformed")]
        assert await stack.ledger_total() == before


async def test_a_request_head_must_arrive_within_the_deadline(tmp_path: Path) -> None:
    async with running_stack(tmp_path, limits={"keepalive_timeout": "1s"}) as stack:
        host, port = addr(stack)
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        closed_after = None
        try:
            writer.write(b"GET /.gatehold/health HTTP/1.1\r\nHost: x\r\n")
            for _ in range(40):  # a header byte every 0.2 s: never a whole head
                writer.write(b"X")
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1), timeout=0.2) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
        except ConnectionError:
            closed_after = time.monotonic() - started
        finally:
            writer.close()
        assert closed_after is not None, "a trickled request head kept its connection open"
        assert closed_after < 2.5


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, limits={"keepalive_timeout": "1s"}) as stack:
        host, port = addr(stack)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"GET /.gatehold/health HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            started = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), timeout=5)  # until closed
            assert b"ok" in rest
            assert time.monotonic() - started < 2.5
        finally:
            writer.close()


async def open_idle(stack: Stack, count: int) -> list[Any]:
    host, port = addr(stack)
    return [await asyncio.open_connection(host, port) for _ in range(count)]


async def health_on(connection: Any) -> int:
    reader, writer = connection
    try:
        writer.write(b"GET /.gatehold/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    return parse_response(data).status


async def test_one_address_may_hold_only_so_many_connections(tmp_path: Path) -> None:
    async with running_stack(tmp_path, limits={"connections_per_client": 3}) as stack:
        held = await open_idle(stack, 3)
        await asyncio.sleep(0.1)
        extra_reader, extra_writer = (await open_idle(stack, 1))[0]
        data = await asyncio.wait_for(extra_reader.read(), timeout=5)
        extra_writer.close()
        await extra_writer.wait_closed()
        refused = parse_response(data)
        assert refused.status == 429
        assert refused.json()["type"] == "/.gatehold/problems/connection-limit"
        rows = await stack.audit_rows(refused.headers["x-request-id"])
        assert [(r["kind"], r["reason"]) for r in rows] == [("rejected", "connection-limit")]
        # The held connections still work; once one closes, a new one is accepted.
        assert await health_on(held[0]) == 200
        guard = stack.app[CONNECTIONS]  # the server counts the close once it sees it
        await until(lambda: guard.open_from("127.0.0.1") == 2, "the closed one is let go")
        assert await health_on((await open_idle(stack, 1))[0]) == 200
        for _, writer in held[1:]:
            writer.close()
            await writer.wait_closed()


async def test_trusted_proxies_are_not_capped(tmp_path: Path) -> None:
    server = {"public_url": "http://gatehold.test", "trusted_proxies": ["127.0.0.1/32"]}
    overrides: dict[str, Any] = {"limits": {"connections_per_client": 2}, "server": server}
    async with running_stack(tmp_path, **overrides) as stack:
        held = await open_idle(stack, 5)
        assert [await health_on(c) for c in held] == [200] * 5


async def test_the_production_runner_applies_the_same_protections(tmp_path: Path) -> None:
    port = free_port()
    async with ledger_server(tmp_path) as ledger_url:
        settings = demo_settings(
            tmp_path,
            ledger_url,
            server={"host": "127.0.0.1", "port": port, "public_url": "http://gatehold.test"},
            limits={"connections_per_client": 2},
        )
        runners = await start_gateway(settings, {})
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(UNREADABLE["oversized-cookie"])
            data = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            await writer.wait_closed()
            assert parse_response(data).json()["type"].endswith("request-malformed")
            assert SECRET.encode() not in data
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.1)
            extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
            refused = parse_response(await asyncio.wait_for(extra_reader.read(), timeout=5))
            assert refused.status == 429
            for _, held_writer in [*held, (extra_reader, extra_writer)]:
                held_writer.close()
                await held_writer.wait_closed()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
