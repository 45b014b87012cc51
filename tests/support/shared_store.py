"""Two engines on one database, each standing for a replica (a process of its own).

SQLite: two engines on one file. PostgreSQL: two engines on a fresh database of the
test's own (``postgres.fresh_pg_engine``), dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.postgres import fresh_pg_engine

BACKENDS = ("sqlite", "postgresql")


@asynccontextmanager
async def two_replicas(
    backend: str, folder: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Engines ``(a, b)`` on one migrated store of ``backend``."""
    if backend == "sqlite":
        dsn = f"sqlite:///{folder / 'shared.db'}"
        first = open_engine(dsn)
        await migrate(first)
        async with _second(dsn) as second:
            try:
                yield first, second
            finally:
                await first.dispose()
        return
    async with fresh_pg_engine("limits") as first:
        async with _second(first.url.render_as_string(hide_password=False)) as second:
            yield first, second


@asynccontextmanager
async def _second(dsn: str) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(dsn)
    try:
        yield engine
    finally:
        await engine.dispose()
