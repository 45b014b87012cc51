"""An open WebSocket must end when what opened it ends, and only the gateway's own pages
(or allow-listed origins) may open one with a visitor's session cookie.

The attacks: after ``gatehold users deactivate rita`` (or a logout, or the session's
expiry) her open socket kept working; a page on another site could open a socket with
the visitor's cookie (cross-site WebSocket hijacking); a bad handshake opened the
app-side socket first.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import ENGINE
from gateway.auth.sessions import hash_token
from gateway.context import GATEWAY
from gateway.store import api_keys as key_store
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from tests.support.rawhttp import raw_request
from tests.support.stack import Stack, running_stack

ORIGIN = {"Origin": "http://gatehold.test"}
FEED = "/ws/acme/feed"


async def opened(stack: Stack, headers: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
    ws = await stack.client.ws_connect(FEED, headers=headers)
    hello = await ws.receive_json(timeout=5)
    assert hello == {"tenant": "acme", "hello": True}
    await ws.send_str("ping")
    assert (await ws.receive(timeout=5)).data == "echo: ping"
    return ws


async def assert_closed_for(
    stack: Stack, ws: aiohttp.ClientWebSocketResponse, why: str, *, within: float
) -> None:
    started = time.monotonic()
    message = await ws.receive(timeout=within + 3)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    assert time.monotonic() - started < within
    assert ws.close_code == 1008
    await ws.close()
    events = [e for e in await stack.events("websocket-closed") if e["reason"] == why]
    assert len(events) == 1, events
    assert events[0]["data"]["code"] == 1008
    assert events[0]["route"] == "live-feed"


async def test_deactivating_the_user_closes_her_open_socket(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ws = await opened(stack, stack.cookie("rita@acme.test") | ORIGIN)
        other = await opened(stack, stack.cookie("alice@acme.test") | ORIGIN)
        # What `gatehold users deactivate` does, written to the store as another process
        # would: only the shared revocation poll tells this gateway.
        engine = stack.app[ENGINE]
        rita = await user_store.get_user_by_email(engine, "rita@acme.test")
        assert rita is not None
        await user_store.set_active(engine, rita.id, False)
        await session_store.revoke_user_sessions(engine, rita.id, time.time())
        await assert_closed_for(stack, ws, "credential-revoked", within=2.0)
        events = await stack.events("websocket-closed")
        assert [e["actor"] for e in events] == ["rita@acme.test"]
        # Alice's socket on the same feed is untouched.
        await other.send_str("still here")
        assert (await other.receive(timeout=5)).data == "echo: still here"
        await other.close()


async def test_logging_out_closes_the_sessions_socket(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await stack.mint("alice@acme.test")
        cookie = {"Cookie": f"__Host-gatehold={token}"}
        ws = await opened(stack, cookie | ORIGIN)
        await stack.app[GATEWAY].sessions.revoke(hash_token(token))  # what logout calls
        await assert_closed_for(stack, ws, "credential-revoked", within=1.0)


async def test_a_socket_closes_when_its_session_expires(tmp_path: Path) -> None:
    sessions = {"absolute_timeout": "3s", "idle_timeout": "1h"}
    async with running_stack(tmp_path, sessions=sessions) as stack:
        token = await stack.mint("alice@acme.test")
        ws = await opened(stack, {"Cookie": f"__Host-gatehold={token}"} | ORIGIN)
        await assert_closed_for(stack, ws, "credential-expired", within=3.5)


async def test_a_socket_lives_at_most_the_maximum_lifetime(tmp_path: Path) -> None:
    async with running_stack(tmp_path, limits={"websocket_max_lifetime": "1s"}) as stack:
        ws = await opened(stack, stack.cookie("alice@acme.test") | ORIGIN)
        await assert_closed_for(stack, ws, "max-lifetime", within=1.5)


async def test_revoking_an_api_key_closes_its_socket(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        key_id, key = await key_store.create_key(
            engine, tenant="acme", role="standard", label="feed", ttl=3600, now=time.time()
        )
        # No Origin: a script with a key is not a browser page, and no page can make a
        # browser send this key.
        ws = await opened(stack, {"Authorization": f"Bearer {key}"})
        await key_store.revoke_key(engine, key_id, time.time())
        await assert_closed_for(stack, ws, "credential-revoked", within=2.0)


async def test_a_socket_closes_when_its_api_key_expires(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _, key = await key_store.create_key(
            stack.app[ENGINE], tenant="acme", role="standard", label="feed", ttl=2, now=time.time()
        )
        ws = await opened(stack, {"Authorization": f"Bearer {key}"})
        await assert_closed_for(stack, ws, "credential-expired", within=2.5)


async def test_open_sockets_do_not_take_the_upstreams_request_pool(tmp_path: Path) -> None:
    async with running_stack(tmp_path, limits={"upstream_pool": 2}) as stack:
        cookie = stack.cookie("alice@acme.test")
        sockets = [await opened(stack, cookie | ORIGIN) for _ in range(4)]
        started = time.monotonic()
        response = await stack.client.get("/api/invoices", headers=cookie)
        assert response.status == 200
        assert time.monotonic() - started < 1.0
        for ws in sockets:
            await ws.close()


FOREIGN_ORIGINS = [
    "http://evil.test",
    "null",
    "https://gatehold.test",
    "http://gatehold.test.evil.test",
    "http://gatehold.test:8080",
]


@pytest.mark.parametrize("origin", [*FOREIGN_ORIGINS, None])
async def test_a_cookie_socket_from_a_foreign_or_missing_origin_is_refused(
    tmp_path: Path, origin: str | None
) -> None:
    async with running_stack(tmp_path) as stack:
        headers = stack.cookie("alice@acme.test") | {"Accept": "application/json"}
        if origin is not None:
            headers["Origin"] = origin
        before = await stack.ledger_total()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stack.client.ws_connect(FEED, headers=headers)
        assert refused.value.status == 403
        assert await stack.ledger_total() == before, "Ledger saw the upgrade"
        request_id = (refused.value.headers or {}).get("X-Request-Id", "")
        await assert_refusal_audited(stack, request_id, "origin-forbidden")


async def assert_refusal_audited(stack: Stack, request_id: str, reason: str) -> None:
    rows: list[dict[str, Any]] = await stack.audit_rows(request_id)
    assert [r["kind"] for r in rows] == ["request", "outcome"]
    assert rows[1]["reason"] == reason
    assert json.loads(rows[1]["data"])["status"] == 403


async def test_allow_listed_origins_may_open_sockets(tmp_path: Path) -> None:
    allowed = {"websocket_origins": ["https://app.example.test"]}
    async with running_stack(tmp_path, limits=allowed) as stack:
        for origin in ("http://gatehold.test", "https://app.example.test"):
            ws = await opened(stack, stack.cookie("alice@acme.test") | {"Origin": origin})
            await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await stack.client.ws_connect(
                FEED, headers=stack.cookie("alice@acme.test") | {"Origin": "https://evil.test"}
            )


@pytest.mark.parametrize(
    "bad",
    [
        {"Sec-WebSocket-Version": "12"},
        {"Sec-WebSocket-Key": "too-short"},
        {"Sec-WebSocket-Key": ""},
        {"Connection": "keep-alive"},
    ],
)
async def test_a_bad_handshake_is_refused_before_the_app_is_dialled(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    async with running_stack(tmp_path) as stack:
        server = stack.client.server
        headers = (
            stack.cookie("alice@acme.test")
            | ORIGIN
            | {
                "Accept": "application/json",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            }
            | bad
        )
        before = await stack.ledger_total()
        response = await raw_request(str(server.host), int(server.port or 0), "GET", FEED, headers)
        assert response.status == 400
        assert await stack.ledger_total() == before, "Ledger's socket was opened"
        await asyncio.sleep(0)
