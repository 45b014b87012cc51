"""The change feed: one LISTEN connection per process, woken subscribers, reconnection.

On a database of the test's own: notifications reach the subscribers of their channel
only, at commit; the LISTEN connection killed by the server (``pg_terminate_backend``)
wakes every subscriber, is logged once however many attempts reconnecting takes, and
comes back; the revocation polls of sessions and API keys are woken by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.api_clients import ApiKeys
from gateway.auth.sessions import SessionManager
from gateway.model import AuthMethod, Membership
from gateway.store import api_keys as key_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.engine import open_engine
from gateway.store.notify import REGISTRY, RESYNC, RULES, ChangeFeed, notify, woken
from tests.support.postgres import fresh_pg_engine, server_dsn


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_pg_engine("feed") as fresh:
        yield fresh


@contextlib.asynccontextmanager
async def started(feed: ChangeFeed) -> AsyncIterator[ChangeFeed]:
    await feed.start()
    try:
        yield feed
    finally:
        await feed.close()


async def until(check: Callable[[], bool], within: float = 2.0) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < within, "not within the time allowed"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def send(engine: AsyncEngine, channel: str, payload: str, *, commit: bool = True) -> None:
    async with engine.connect() as conn, conn.begin() as transaction:
        await notify(conn, channel, payload)
        if not commit:
            await transaction.rollback()


async def listening_pids(engine: AsyncEngine) -> list[int]:
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    )
    async with engine.connect() as conn:
        return [int(pid) for (pid,) in await conn.execute(query)]


async def test_subscribers_of_a_channel_hear_its_committed_notifications(
    engine: AsyncEngine,
) -> None:
    heard: dict[str, list[str]] = {RULES: [], REGISTRY: []}
    feed = ChangeFeed(engine)
    for channel, payloads in heard.items():
        feed.subscribe(channel, payloads.append)
    async with started(feed):
        assert feed.listening
        assert len(await listening_pids(engine)) == 1  # one connection for every channel
        await send(engine, REGISTRY, "rolled back", commit=False)
        await send(engine, REGISTRY, '["report", "r-1"]')
        await until(lambda: heard[REGISTRY] == ['["report", "r-1"]'])
        assert heard[RULES] == []


async def test_a_killed_connection_wakes_everyone_is_logged_once_and_comes_back(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[str] = []
    feed = ChangeFeed(engine)
    feed.subscribe(REGISTRY, heard.append)
    database = engine.url.database
    server = await asyncpg.connect(server_dsn())
    caplog.set_level(logging.INFO, logger="gatehold")
    try:
        async with started(feed):
            (pid,) = await listening_pids(engine)
            # No new connection is accepted for a while: reconnecting takes attempts.
            await server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await server.execute("SELECT pg_terminate_backend($1)", pid)
            await until(lambda: RESYNC in heard)  # woken to poll at once
            assert not feed.listening
            assert feed.poll_seconds(5.0) == 0.5
            await asyncio.sleep(1.0)  # the back-off tries several times meanwhile
            assert not feed.listening
            await server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await until(lambda: feed.listening, within=15.0)
            await until(lambda: heard.count(RESYNC) == 2)  # woken again once back
            assert feed.poll_seconds(5.0) == 5.0
            await send(engine, REGISTRY, "after")
            await until(lambda: "after" in heard)
    finally:
        await server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await server.close()
    said = [r.getMessage() for r in caplog.records if r.name == "gatehold"]
    assert len([m for m in said if "LISTEN connection was lost" in m]) == 1, said
    assert len([m for m in said if "listening again" in m]) == 1, said


async def test_a_disabled_feed_or_sqlite_never_listens(tmp_path: Path, engine: AsyncEngine) -> None:
    sqlite = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    try:
        for feed in (ChangeFeed(engine, enabled=False), ChangeFeed(sqlite)):
            async with started(feed):
                assert not feed.listening
                assert feed.poll_seconds(5.0) == 0.5
    finally:
        await sqlite.dispose()
    assert await listening_pids(engine) == []


async def test_revocations_on_another_process_are_evicted_at_once_not_at_the_poll(
    engine: AsyncEngine,
) -> None:
    """Two processes' session and key caches, polling only every 30 s: the feed wakes them."""
    await tenant_store.create_tenant(engine, "acme", display_name="Acme", now=time.time())
    user_id = await user_store.add_user(
        engine, "alice@acme.test", memberships=[Membership("acme", "standard")]
    )
    key_id, key = await key_store.create_key(
        engine, tenant="acme", role="standard", label="", ttl=3600, now=time.time()
    )
    here = SessionManager(engine, idle_timeout=3600, absolute_timeout=86400)
    there = SessionManager(engine, idle_timeout=3600, absolute_timeout=86400)
    keys_there = ApiKeys(engine)
    feed = ChangeFeed(engine)
    there.follow(feed)
    keys_there.follow(feed)
    async with started(feed):
        await there.start(poll_seconds=30)
        await keys_there.start(poll_seconds=30)
        try:
            token, id_hash = await here.create(
                user_id=user_id, auth_method=AuthMethod.MAGIC_LINK, client_ip="", user_agent=""
            )
            assert await there.principal(token) is not None  # cached there now
            assert await keys_there.principal(key) is not None
            await here.revoke(id_hash)
            await key_store.revoke_key(engine, key_id, time.time())
            await until(lambda: there.cached_sessions() == 0, within=1.0)
            assert await there.principal(token) is None
            began = time.monotonic()
            while await keys_there.principal(key) is not None:
                assert time.monotonic() - began < 1.0, "the revoked key still passes there"
                await asyncio.sleep(0.01)
        finally:
            await there.close()
            await keys_there.close()


async def test_a_poller_cancelled_as_it_is_woken_stops() -> None:
    """``asyncio.wait_for`` (3.11) loses a cancellation that arrives with the wake: the
    poller would poll on and the ``close()`` awaiting it would wait forever."""
    event = asyncio.Event()
    rounds = 0

    async def poller() -> None:
        nonlocal rounds
        while True:
            await woken(event, 30)
            event.clear()
            rounds += 1

    task = asyncio.create_task(poller())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert rounds <= 1


async def test_woken_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert not await woken(event, 0.01)
    event.set()
    assert await woken(event, 5)
