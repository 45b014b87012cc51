"""A PostgreSQL database of a test's own, on the server ``GATEHOLD_TEST_PG_DSN`` names
(CI sets it; without it the test is a missing component, never a silent skip)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.components import require_component


def server_dsn() -> str:
    dsn = os.environ.get("GATEHOLD_TEST_PG_DSN")
    if not dsn:
        require_component("PostgreSQL", "set GATEHOLD_TEST_PG_DSN=postgresql://user@host/db")
    return str(dsn)


@asynccontextmanager
async def fresh_pg_engine(label: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a new, migrated database ``gatehold_<label>_<random>``, dropped after."""
    dsn = server_dsn()
    name = f"gatehold_{label}_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = open_engine(dsn.rsplit("/", 1)[0] + f"/{name}")
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@contextmanager
def fresh_pg_dsn(label: str) -> Iterator[str]:
    """The DSN of a new, empty database ``gatehold_<label>_<random>``, dropped after
    (for processes a test starts, which migrate it themselves)."""
    dsn = server_dsn()
    name = f"gatehold_{label}_{secrets.token_hex(6)}"

    async def run(statement: str) -> None:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE "{name}" WITH (FORCE)'))
