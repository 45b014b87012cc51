"""Request smuggling, Host and absolute-form tricks, and oversized heads, byte for byte
over a raw socket (HTTP clients would repair or refuse to send them).

A desync needs two parsers that frame a request differently: the gateway reads one
request and the app behind reads another. Each case is a request (and, where framing
is the attack, a second request hidden after it) that a signed-in person sends. Each
must be refused with a 400-class answer as problem+json carrying a request id, the
answer must be the only one on the connection (the hidden request is never answered
either), nothing may reach Ledger, and the audit log must hold the refusal under that
request id. One gateway serves the whole table.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.rawhttp import parse_response
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = "alice@acme.test"
SENTINEL = b"GET /.gatehold/health HTTP/1.1\r\nHost: gatehold.test\r\nConnection: close\r\n\r\n"
"""Sent after each case on the same connection: if the gateway kept the connection, it
answers this and closes, so the read ends on an event rather than a timeout; any other
answer after the refusal would be a smuggled request's."""
HEALTHY = b'{"status": "ok"}'
STATUS_LINE = re.compile(rb"HTTP/\d\.\d \d{3} ")
HIDDEN = b"GET /api/invoices/8 HTTP/1.1\r\nHost: gatehold.test\r\n\r\n"
"""The smuggled request: globex's invoice, which alice may not read."""


def post(*headers: str, body: bytes = b"", target: str = "/api/invoices") -> bytes:
    """A POST with ``headers`` exactly as written (CRLF line ends added)."""
    head = [f"POST {target} HTTP/1.1", "Host: gatehold.test", "Cookie: {cookie}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


CHUNKED_HIDING = b"0\r\n\r\n" + HIDDEN
LARGE = "a" * 9000

CASES: dict[str, tuple[bytes, int]] = {
    # Framing: CL.TE, TE.CL and their variants
    "CL and TE chunked": (
        post("Content-Length: 60", "Transfer-Encoding: chunked", body=CHUNKED_HIDING),
        400,
    ),
    "TE chunked and CL": (
        post("Transfer-Encoding: chunked", "Content-Length: 4", body=CHUNKED_HIDING),
        400,
    ),
    "two different Content-Lengths": (
        post("Content-Length: 0", "Content-Length: 61", body=HIDDEN),
        400,
    ),
    "two equal Content-Lengths": (
        post("Content-Length: 2", "Content-Length: 2", body=b"{}"),
        400,
    ),
    "Content-Length as a list": (post("Content-Length: 2, 2", body=b"{}"), 400),
    "Content-Length with a sign": (post("Content-Length: +2", body=b"{}"), 400),
    "Content-Length in hex": (post("Content-Length: 0x2", body=b"{}"), 400),
    "negative Content-Length": (post("Content-Length: -1", body=b"{}"), 400),
    "TE chunked, identity": (
        post("Transfer-Encoding: chunked, identity", body=CHUNKED_HIDING),
        400,
    ),
    "TE identity": (post("Transfer-Encoding: identity", "Content-Length: 2", body=b"{}"), 400),
    "TE xchunked": (post("Transfer-Encoding: xchunked", body=CHUNKED_HIDING), 400),
    "TE chunked twice": (
        post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=CHUNKED_HIDING),
        400,
    ),
    "TE with a vertical tab": (post("Transfer-Encoding:\x0bchunked", body=CHUNKED_HIDING), 400),
    "TE folded onto a second line": (
        post("Transfer-Encoding:", " chunked", body=CHUNKED_HIDING),
        400,
    ),
    "TE on HTTP/1.0": (
        post("Transfer-Encoding: chunked", body=CHUNKED_HIDING).replace(
            b"HTTP/1.1", b"HTTP/1.0", 1
        ),
        400,
    ),
    "chunk size with a 0x prefix": (
        post("Transfer-Encoding: chunked", body=b"0x2\r\n{}\r\n0\r\n\r\n"),
        400,
    ),
    "chunk size that is not hex": (
        post("Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"),
        400,
    ),
    "chunk ended by a bare LF": (
        post("Transfer-Encoding: chunked", body=b"2\n{}\n0\n\n" + HIDDEN),
        400,
    ),
    "space before the colon": (post("Content-Length : 2", body=b"{}"), 400),
    # Line endings and folding in the head
    "obs-fold of an ordinary header": (post("X-Note: one", " two", "Content-Length: 0"), 400),
    "bare LF line ends": (
        b"GET /api/invoices HTTP/1.1\nHost: gatehold.test\nCookie: {cookie}\n\n",
        400,
    ),
    "bare CR inside a header value": (post("X-Note: one\rX-Gatehold-User: admin"), 400),
    "NUL in a header value": (post("X-Note: one\x00two", "Content-Length: 0"), 400),
    # Host and absolute-form
    "absolute-form for another host": (
        b"GET http://evil.example/api/invoices HTTP/1.1\r\nHost: gatehold.test\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    "absolute-form with userinfo": (
        b"GET http://gatehold.test@evil.example/api/invoices HTTP/1.1\r\n"
        b"Host: gatehold.test\r\nCookie: {cookie}\r\n\r\n",
        400,
    ),
    "absolute-form with a bracketed host": (
        b"GET http://[gatehold.test/api/invoices HTTP/1.1\r\nHost: gatehold.test\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    "two Host headers": (
        b"GET /api/invoices HTTP/1.1\r\nHost: gatehold.test\r\nHost: evil.example\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    "no Host on HTTP/1.1": (b"GET /api/invoices HTTP/1.1\r\nCookie: {cookie}\r\n\r\n", 400),
    "Host with a path": (
        b"GET /api/invoices HTTP/1.1\r\nHost: gatehold.test/admin\r\nCookie: {cookie}\r\n\r\n",
        400,
    ),
    "Host with userinfo": (
        b"GET /api/invoices HTTP/1.1\r\nHost: gatehold.test@evil.example\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    "Host with a backslash": (
        b"GET /api/invoices HTTP/1.1\r\nHost: evil.example\\gatehold.test\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    # Versions and oversized heads
    "HTTP/2.0 on a HTTP/1 connection": (
        b"GET /api/invoices HTTP/2.0\r\nHost: gatehold.test\r\nCookie: {cookie}\r\n\r\n",
        400,
    ),
    "HTTP/1.2": (
        b"GET /api/invoices HTTP/1.2\r\nHost: gatehold.test\r\nCookie: {cookie}\r\n\r\n",
        400,
    ),
    "HTTP/0.9 request line": (b"GET /api/invoices\r\n\r\n", 400),
    "a header line over 8 KiB": (post(f"X-Note: {LARGE}", "Content-Length: 0"), 400),
    "a header name over 8 KiB": (post(f"X-{LARGE}: 1", "Content-Length: 0"), 400),
    "a request line over 8 KiB": (
        b"GET /api/invoices?q=" + LARGE.encode() + b" HTTP/1.1\r\nHost: gatehold.test\r\n"
        b"Cookie: {cookie}\r\n\r\n",
        400,
    ),
    "two hundred header lines": (
        post(*(f"X-Note-{i}: {i}" for i in range(200)), "Content-Length: 0"),
        400,
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("smuggling")
    async with running_stack(data) as running:
        yield running


async def exchange(stack: Stack, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the gateway answers until it
    closes (a hidden second request would show as another answer)."""
    server = stack.client.server
    reader, writer = await asyncio.open_connection(str(server.host), int(server.port or 0))
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=5)
            except TimeoutError:
                break  # kept open, answered all it will
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


async def test_the_same_request_framed_plainly_passes(stack: Stack) -> None:
    cookie = stack.cookie(ALICE)["Cookie"].encode()
    plain = b"GET /api/invoices HTTP/1.1\r\nHost: gatehold.test\r\nCookie: " + cookie
    answer = parse_response(await exchange(stack, plain + b"\r\nConnection: close\r\n\r\n"))
    assert answer.status == 200
    assert (await stack.ledger_hits()).get(answer.headers["x-request-id"]) == 1


@pytest.mark.parametrize("name", list(CASES))
async def test_a_smuggling_or_malformed_request_is_refused_alone(stack: Stack, name: str) -> None:
    raw, status = CASES[name]
    cookie = stack.cookie(ALICE)["Cookie"].removeprefix("Cookie: ")
    before = await stack.ledger_total()
    data = await exchange(stack, raw.replace(b"{cookie}", cookie.encode()) + SENTINEL)
    answers = len(STATUS_LINE.findall(data)) - data.count(HEALTHY)
    assert answers == 1, f"{name}: {answers} answers besides the sentinel's: {data[:300]!r}"
    answer = parse_response(data)
    assert answer.status == status, (name, answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/problem+json"), name
    problem = json.loads(answer.body[: int(answer.headers["content-length"])])
    assert b"Traceback" not in data
    rows = await stack.audit_rows(problem["request_id"])
    assert [r for r in rows if r["kind"] == "rejected" or r["decision"] == "deny"], rows
    assert not [r for r in rows if r["decision"] == "allow"], rows
    assert await stack.ledger_total() == before, f"{name}: something reached Ledger"
