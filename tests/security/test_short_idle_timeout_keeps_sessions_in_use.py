"""An idle timeout shorter than a minute must not end sessions that are in use.

Activity used to be recorded at most once a minute, so with ``idle_timeout: 2s`` a
person clicking every half second was signed out after two seconds. And a process that
had not served the session lately trusted its own stale idea of the last activity,
even when another process (a second worker, replica) had served it a moment ago.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import build_app
from tests.support.stack import Stack, running_stack

Client = TestClient[web.Request, web.Application]
IDLE = 2.0
API = {"Accept": "application/json"}


async def status(client: Client, token: str) -> int:
    response = await client.get(
        "/api/invoices/7", headers={"Cookie": f"__Host-gatehold={token}", **API}
    )
    await response.read()
    return response.status


async def test_a_session_in_use_outlives_a_short_idle_timeout(tmp_path: Path) -> None:
    async with running_stack(tmp_path, sessions={"idle_timeout": f"{IDLE}s"}) as stack:
        token = await stack.mint("alice@acme.test")
        answers = []
        for _ in range(12):  # six seconds of use, three idle timeouts' worth
            answers.append(await status(stack.client, token))
            await asyncio.sleep(IDLE / 4)
        assert answers == [200] * 12
        await asyncio.sleep(IDLE + 0.5)  # then it is left alone: it ends
        assert await status(stack.client, token) == 401


async def test_another_process_honours_activity_it_did_not_see(tmp_path: Path) -> None:
    async with running_stack(tmp_path, sessions={"idle_timeout": f"{IDLE}s"}) as stack:
        token = await stack.mint("alice@acme.test")
        second = await second_process(stack)
        try:
            assert await status(second, token) == 200  # the second process caches it now
            for _ in range(8):  # then only the first serves it, for two idle timeouts
                assert await status(stack.client, token) == 200
                await asyncio.sleep(IDLE / 4)
            assert await status(second, token) == 200
            hits = await stack.ledger_total()
            await asyncio.sleep(IDLE + 0.6)
            assert await status(second, token) == 401  # truly idle: ended everywhere
            assert await status(stack.client, token) == 401
            assert await stack.ledger_total() == hits
        finally:
            await second.close()


async def second_process(stack: Stack) -> Client:
    """Another gateway on the same store, as a second worker would be."""
    client: Client = TestClient(TestServer(build_app(stack.settings, stack.ruleset)))
    await client.start_server()
    return client
