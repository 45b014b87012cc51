"""Forwarding: streaming, WebSockets, upstream failures and redirects."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp

from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.stack import running_stack

MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def test_a_200_mib_download_streams_through_with_flat_memory(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        before = rss_bytes()
        peak = before
        response = await stack.client.get("/big/200", headers=stack.cookie("alice@acme.test"))
        assert response.status == 200
        received = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            received += len(chunk)
            peak = max(peak, rss_bytes()) if received % (16 * MIB) < 256 * 1024 else peak
        peak = max(peak, rss_bytes())
    assert received == 200 * MIB
    growth = (peak - before) / MIB
    print(f"200 MiB through the gateway: RSS grew {growth:.1f} MiB")
    assert growth < 50, f"RSS grew {growth:.1f} MiB while streaming"


async def test_a_refused_upstream_is_a_clean_502(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        response = await stack.client.get(
            "/down", headers=stack.cookie("alice@acme.test") | {"Accept": "application/json"}
        )
        assert response.status == 502
        body = await response.json()
        assert body["type"].endswith("/upstream-refused")
        assert "Traceback" not in await response.text()


async def test_a_slow_upstream_is_a_clean_504_page(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        response = await stack.client.get(
            "/slow?seconds=3", headers=stack.cookie("alice@acme.test") | {"Accept": "text/html"}
        )
        assert response.status == 504
        page = await response.text()
        assert "took too long" in page
        assert response.headers["X-Request-Id"] in page


async def test_redirects_to_the_upstreams_own_address_are_rewritten(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        response = await stack.client.get(
            "/redirect-home", headers=stack.cookie("alice@acme.test"), allow_redirects=False
        )
        assert response.status == 302
        location = response.headers["Location"]
        assert stack.ledger_url not in location
        assert location in ("/api/invoices", "http://gatehold.test/api/invoices")


async def test_websocket_upgrade_is_checked_then_proxied(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        # A browser sends its page's Origin; a cookie socket without one is refused.
        cookie = stack.cookie("alice@acme.test") | {"Origin": "http://gatehold.test"}
        async with stack.client.ws_connect("/ws/acme/feed", headers=cookie) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["tenant"] == "acme"
            await ws.send_str("ping")
            echoed = await ws.receive(timeout=5)
            assert "ping" in echoed.data
        before = await stack.ledger_total()
        try:
            async with stack.client.ws_connect("/ws/globex/feed", headers=cookie):
                raise AssertionError("a foreign tenant's feed was opened")
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 404
        assert await stack.ledger_total() == before


async def test_request_bodies_over_the_route_limit_are_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        before = await stack.ledger_total()
        response = await stack.client.post(
            "/api/echo/upload",
            data=io.BytesIO(b"x" * (2 * MIB)),
            headers=stack.cookie("alice@acme.test") | {"Accept": "application/json"},
        )
        assert response.status == 413
        assert await stack.ledger_total() == before
