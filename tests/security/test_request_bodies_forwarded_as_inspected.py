"""The upstream gets exactly the body the gateway inspected and counted, and no more.

The attacks: a decompressed body went upstream still labelled ``Content-Encoding:
gzip``; a chunked body over the route's limit on a streamed route answered 502 after
about 10 MB had already reached the app (which then saw a complete-looking request).
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.stack import Stack, running_stack

MIB = 1024 * 1024
RULES = """
version: 1
upstreams:
  app: {url: "${APP_URL}", timeout: 10s}
roles:
  standard: {can: [read, write]}
routes:
  - name: upload
    match: {path: "/upload/{rest:path}", methods: [POST, PUT]}
    upstream: app
    max_body: 1MiB
"""


@dataclass
class Seen:
    """What the recording app received, per X-Request-Id."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    aborted: dict[str, int] = field(default_factory=dict)
    """Requests whose body broke off, with the bytes received before."""


@asynccontextmanager
async def recording_app() -> AsyncIterator[tuple[str, Seen]]:
    """A real upstream on loopback that keeps the raw bytes it gets (no decompression)."""
    seen = Seen()

    async def record(request: web.Request) -> web.Response:
        request_id = request.headers.get("X-Request-Id", "-")
        seen.headers[request_id] = dict(request.headers)
        received = bytearray()
        try:
            async for chunk in request.content.iter_any():
                received += chunk
        except Exception:
            seen.aborted[request_id] = len(received)
            raise
        seen.bodies[request_id] = bytes(received)
        return web.json_response({"bytes": len(received)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def stack_with_app(tmp_path: Path) -> AsyncIterator[tuple[Stack, Seen]]:
    async with recording_app() as (url, seen):
        async with running_stack(tmp_path, rules_text=RULES, rules_env={"APP_URL": url}) as stack:
            yield stack, seen


def caller(stack: Stack) -> dict[str, str]:
    return stack.cookie("alice@acme.test") | {"Accept": "application/json"}


PLAIN = b'{"note": "' + b"a" * 5000 + b'"}'
ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "GZip": gzip.compress(PLAIN),
}


@pytest.mark.parametrize("encoding", sorted(ENCODED))
async def test_an_inflated_body_goes_upstream_without_its_old_encoding(
    tmp_path: Path, encoding: str
) -> None:
    async with stack_with_app(tmp_path) as (stack, seen):
        response = await stack.client.post(
            "/upload/doc",
            data=ENCODED[encoding],
            headers=caller(stack) | {"Content-Encoding": encoding},
        )
        assert response.status == 200, await response.text()
        request_id = response.headers["X-Request-Id"]
        got = {k.lower(): v for k, v in seen.headers[request_id].items()}
        assert seen.bodies[request_id] == PLAIN
        assert "content-encoding" not in got, "inflated bytes labelled as compressed"


@pytest.mark.parametrize("encoding", ["compress", "gzip, gzip", "x-custom", "br;q=1"])
async def test_a_body_in_an_encoding_the_gateway_cannot_inspect_is_refused(
    tmp_path: Path, encoding: str
) -> None:
    async with stack_with_app(tmp_path) as (stack, seen):
        response = await stack.client.post(
            "/upload/doc", data=PLAIN, headers=caller(stack) | {"Content-Encoding": encoding}
        )
        assert response.status == 400
        assert (await response.json())["type"].endswith("body-invalid")
        assert response.headers["X-Request-Id"] not in seen.headers
        rows = await stack.audit_rows(response.headers["X-Request-Id"])
        assert [r["reason"] for r in rows if r["kind"] == "outcome"] == ["body-invalid"]


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
        await asyncio.sleep(0)


async def wait_for(condition: Any, seconds: float = 3.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())


async def assert_413_and_upstream_aborted(stack: Stack, seen: Seen, response: Any) -> None:
    assert response.status == 413, await response.text()
    assert (await response.json())["type"].endswith("body-too-large")
    request_id = response.headers["X-Request-Id"]
    # The body was streamed (past the gateway's first buffer), so the app saw the
    # request start; it must see it cut off, never a complete request.
    assert request_id in seen.headers
    assert await wait_for(lambda: request_id in seen.aborted), "the upstream body was not cut"
    assert request_id not in seen.bodies
    assert seen.aborted[request_id] <= 1 * MIB + 256 * 1024
    rows = await stack.audit_rows(request_id)
    outcomes = [r for r in rows if r["kind"] == "outcome"]
    assert [o["reason"] for o in outcomes] == ["body-too-large"]
    assert '"status":413' in outcomes[0]["data"].replace(" ", "")


async def test_a_chunked_body_over_the_limit_is_cut_upstream_and_answered_413(
    tmp_path: Path,
) -> None:
    async with stack_with_app(tmp_path) as (stack, seen):
        response = await stack.client.post(
            "/upload/big", data=chunks(4 * MIB), headers=caller(stack)
        )
        await assert_413_and_upstream_aborted(stack, seen, response)


async def test_a_gzip_bomb_is_counted_by_its_inflated_size(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (8 * MIB))
    assert len(bomb) < 64 * 1024
    async with stack_with_app(tmp_path) as (stack, seen):
        response = await stack.client.post(
            "/upload/bomb", data=bomb, headers=caller(stack) | {"Content-Encoding": "gzip"}
        )
        await assert_413_and_upstream_aborted(stack, seen, response)
