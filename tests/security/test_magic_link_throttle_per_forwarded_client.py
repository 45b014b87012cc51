"""Behind a load balancer, sign-in limits and audit rows follow the real client.

The gateway trusts one proxy (127.0.0.1/32). Clients reach it through that proxy with
``X-Forwarded-For`` naming them; one client that runs into the magic-link limit must
not lock out the next one, and every audit row names the client the proxy vouched
for. A peer the gateway does not trust (a socket from 127.0.0.2) cannot pick its
address with ``X-Forwarded-For``: it keeps its own, and its own single bucket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from tests.integration.test_magic_link import BROWSER, cookies_set, follow_link
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

LIMIT = 3


@asynccontextmanager
async def behind_proxy(tmp_path: Path, **mail: Any) -> AsyncIterator[Stack]:
    port = free_port()
    async with running_stack(
        tmp_path,
        port=port,
        server={"public_url": f"http://127.0.0.1:{port}", "trusted_proxies": ["127.0.0.1/32"]},
        auth={"magic_link": {"per_client_per_hour": LIMIT, "per_email_per_hour": 1000}},
        **mail,
    ) as stack:
        yield stack


async def ask(stack: Stack, email: str, *, via: str) -> int:
    """Ask for a link through the trusted proxy on behalf of client ``via``."""
    response = await stack.client.post(
        "/.gatehold/login/magic",
        data={"email": email},
        headers={"X-Forwarded-For": via, "Cookie": BROWSER},
    )
    return response.status


async def clients_in(stack: Stack, kind: str) -> list[str]:
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    return [e["data"]["client"] for e in await stack.events(kind)]


async def test_one_throttled_client_does_not_throttle_the_next(tmp_path: Path) -> None:
    async with behind_proxy(tmp_path) as stack:
        for i in range(LIMIT):
            assert await ask(stack, f"guess{i}@acme.test", via="127.0.0.10") == 200
        assert await ask(stack, "alice@acme.test", via="127.0.0.10") == 429
        # Every other client behind the same proxy still gets links.
        for client in ("127.0.0.11", "127.0.0.12", "::1"):
            assert await ask(stack, "alice@acme.test", via=client) == 200
        # The proxy appends the peer it saw: the right-most untrusted hop is the client.
        assert await ask(stack, "rita@acme.test", via="127.0.0.10, 127.0.0.13") == 200
        assert await clients_in(stack, "magic-link-throttled") == ["127.0.0.10"]
        sent = await clients_in(stack, "magic-link-sent")  # in the order the mails went
        assert sorted(sent) == sorted(["127.0.0.11", "127.0.0.12", "::1", "127.0.0.13"])
        assert await stack.ledger_total() == 0


async def test_an_untrusted_peer_cannot_choose_its_address(tmp_path: Path) -> None:
    async with behind_proxy(tmp_path) as stack:
        base = str(stack.client.make_url("/"))
        direct = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=direct) as http:
            statuses = []
            for i in range(LIMIT + 2):
                async with http.post(
                    f"{base}.gatehold/login/magic",
                    data={"email": f"guess{i}@acme.test"},
                    headers={"X-Forwarded-For": f"127.0.0.{100 + i}", "Cookie": BROWSER},
                ) as response:
                    statuses.append(response.status)
        assert statuses == [200] * LIMIT + [429, 429]
        assert await clients_in(stack, "magic-link-throttled") == ["127.0.0.2", "127.0.0.2"]
        assert set(await clients_in(stack, "magic-link-unknown")) == {"127.0.0.2"}
        # ...while the proxy's clients are untouched by that peer's bucket
        assert await ask(stack, "alice@acme.test", via="127.0.0.3") == 200


async def test_sign_in_and_its_failures_are_recorded_with_the_forwarded_client(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    mail = {"mail": {"mode": "smtp", "host": "127.0.0.1", "port": port}}
    async with behind_proxy(tmp_path, **mail) as stack:
        assert await ask(stack, "alice@acme.test", via="127.0.0.20") == 200
        link = Inbox.link_in(await inbox.wait_for("alice@acme.test"))
        # the person's browser reaches the gateway through the proxy too
        stack.client.session.headers["X-Forwarded-For"] = "127.0.0.21"
        try:
            signed_in = await follow_link(stack, link)
            assert signed_in.status == 303
            again = await follow_link_post_only(stack, link)
        finally:
            del stack.client.session.headers["X-Forwarded-For"]
        assert again.status == 400
        assert await clients_in(stack, "magic-link-sent") == ["127.0.0.20"]
        assert await clients_in(stack, "login") == ["127.0.0.21"]
        assert await clients_in(stack, "login-failed") == ["127.0.0.21"]
        session = cookies_set(signed_in)["__Host-gatehold"]
        async with stack.app[ENGINE].connect() as conn:
            rows = await conn.execute(text("SELECT client_ip FROM sessions"))
            stored = {row.client_ip for row in rows}
        assert "127.0.0.21" in stored and session


async def follow_link_post_only(stack: Stack, link: str) -> aiohttp.ClientResponse:
    """Replay the confirm POST of a used link (with a matching confirm nonce)."""
    token = link.split("token=", 1)[1]
    return await stack.client.post(
        "/.gatehold/login/magic/confirm",
        data={"token": token, "nonce": "n"},
        headers={"Cookie": f"__Host-gatehold-confirm=n; {BROWSER}"},
        allow_redirects=False,
    )
