"""PostgreSQL notifications for processes sharing the store (SQLite has none: poll).

``listen`` opens one plain asyncpg connection beside the engine's pool (a pooled
connection would go back to the pool and drop its LISTEN) and calls ``wake`` on every
notification on ``channel``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("gatehold")


class Listener:
    """One LISTEN connection; ``alive`` until the server or network drops it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @property
    def alive(self) -> bool:
        return not self._connection.is_closed()

    async def close(self) -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self._connection.close()


async def listen(engine: AsyncEngine, channel: str, wake: Callable[[], None]) -> Listener | None:
    """LISTEN on ``channel``; ``None`` (logged) on SQLite or when it cannot connect."""
    if engine.dialect.name != "postgresql":
        return None
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn)
        await connection.add_listener(channel, lambda *_: wake())
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("cannot LISTEN on %s (%s); polling instead", channel, error)
        return None
    return Listener(connection)
