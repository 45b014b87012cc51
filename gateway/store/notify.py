"""The change feed: how one process hears what other processes changed in the store.

Writers call ``notify`` inside their transaction (``pg_notify``, delivered at commit;
nothing on SQLite). Each process holds ONE ``ChangeFeed``: one plain asyncpg connection
beside the engine's pool (a pooled connection would go back to the pool and drop its
LISTEN) that listens on every channel its subscribers asked for.

Subscribers are woken, never trusted with the whole truth: each keeps its own poll,
fast (``POLL_SECONDS``) while the feed is not ``listening`` (SQLite, LISTEN disabled,
the connection lost) and slow while it is. When the connection is lost or comes back,
every subscriber is woken with ``RESYNC``, so nothing changed meanwhile is missed. The
feed reconnects with a growing back-off, and says so once per outage, not per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

log = logging.getLogger("gatehold")


def _lost() -> tuple[type[BaseException], ...]:
    """What asyncpg raises when it cannot connect, or the connection is gone.

    asyncpg is imported here, on first use: only a feed on PostgreSQL ever connects,
    and a gateway on SQLite never loads it."""
    import asyncpg

    return (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


RULES = "gatehold_rules"
REVOCATIONS = "gatehold_revocations"
REGISTRY = "gatehold_registry"
ENUMERATION = "gatehold_enumeration"
RESYNC = ""
"""The payload subscribers get when notifications may have been missed: read the store."""
POLL_SECONDS = 0.5
"""How often subscribers read the store while no notification can wake them."""
NOTIFIED_POLL_SECONDS = 5.0
"""The fallback poll of a subscriber while LISTEN works: a notification lost is noticed
this long after at the latest."""
RETRY_FIRST, RETRY_LAST = 0.2, 10.0
"""Reconnection back-off: doubles from the first delay up to the last."""
CHECK_SECONDS = 5.0
"""How often a quiet LISTEN connection is asked whether it still answers."""

Wake = Callable[[str], None]
"""Called with a notification's payload (``RESYNC`` after a gap)."""


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set (True) or ``seconds`` have passed (False).

    Not ``asyncio.wait_for``: on Python 3.11 it returns normally when a cancellation
    arrives just as the event is set, and the cancelled poller then polls on while the
    ``close()`` awaiting it waits forever. ``asyncio.timeout`` never loses one.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended (``None``: nothing to stop)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def notify(conn: AsyncConnection, channel: str, payload: str = "") -> None:
    """Notify ``channel`` when ``conn``'s transaction commits (PostgreSQL; SQLite polls)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


class ChangeFeed:
    """One LISTEN connection for every channel of one process, kept open while it runs."""

    def __init__(self, engine: AsyncEngine, *, enabled: bool = True) -> None:
        """``enabled=False`` never listens: every subscriber polls (``store.listen``)."""
        self._engine = engine
        self._enabled = enabled and engine.dialect.name == "postgresql"
        self._subscribers: dict[str, list[Wake]] = defaultdict(list)
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, channel: str, wake: Wake) -> None:
        """Call ``wake`` on every notification on ``channel`` (subscribe before ``start``)."""
        self._subscribers[channel].append(wake)

    @property
    def listening(self) -> bool:
        """Whether notifications reach this process now (else subscribers poll fast)."""
        return self._connection is not None and not self._connection.is_closed()

    def poll_seconds(
        self, notified: float = NOTIFIED_POLL_SECONDS, *, unnotified: float = POLL_SECONDS
    ) -> float:
        """A subscriber's poll period: ``notified`` while listening (the fallback for a
        notification lost), else ``unnotified``."""
        return notified if self.listening else unnotified

    async def start(self) -> None:
        """Listen now if possible (so a started process hears at once), then keep at it."""
        if not self._enabled:
            return
        if not await self._connect():
            log.warning("change feed: cannot LISTEN yet; polling until it can")
        self._task = asyncio.get_running_loop().create_task(self._keep_listening())

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self._drop()

    async def _connect(self) -> bool:
        dsn = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            import asyncpg

            connection = await asyncpg.connect(dsn, timeout=5)
        except _lost():
            return False
        try:
            for channel in self._subscribers:
                await connection.add_listener(channel, self._deliver)
        except _lost():
            connection.terminate()
            return False
        self._lost.clear()
        connection.add_termination_listener(lambda *_: self._lost.set())
        self._connection = connection
        return True

    def _deliver(self, _connection: object, _pid: int, channel: str, payload: str) -> None:
        for wake in self._subscribers.get(channel, ()):
            wake(payload)

    def _wake_all(self) -> None:
        for wakes in self._subscribers.values():
            for wake in wakes:
                wake(RESYNC)

    async def _keep_listening(self) -> None:
        while True:
            try:
                await self._listen_once()
            except Exception:  # never leave the process deaf: its subscribers poll meanwhile
                log.exception("change feed: unexpected error; trying again")
                await self._drop()
                await asyncio.sleep(RETRY_LAST)

    async def _listen_once(self) -> None:
        """Watch the connection until it is lost, then reconnect (one outage)."""
        if self.listening:
            await self._watch()
            log.warning("change feed: the LISTEN connection was lost; polling meanwhile")
            await self._drop()
            self._wake_all()  # poll now, at the fast period
        delay = RETRY_FIRST
        while not await self._connect():
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_LAST)
        log.info("change feed: listening again")
        self._wake_all()  # whatever changed while nothing was heard

    async def _watch(self) -> None:
        """Return once the connection is lost (closed, or silent when asked)."""
        while self.listening:
            if await woken(self._lost, CHECK_SECONDS):
                return
            connection = self._connection
            if connection is None:
                return
            try:
                await asyncio.wait_for(connection.fetchval("SELECT 1"), CHECK_SECONDS)
            except _lost():
                return

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 2)
            except _lost():
                connection.terminate()
