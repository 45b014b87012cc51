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


def database_dsn(name: str) -> str:
    """The DSN of database ``name`` on the test server."""
    return server_dsn().rsplit("/", 1)[0] + f"/{name}"


async def create_database(label: str) -> str:
    """Create the empty database ``gatehold_<label>_<random>``; its name."""
    name = f"gatehold_{label}_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    """Drop database ``name``, ending any session still connected to it."""
    admin = await asyncpg.connect(server_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_pg_engine(label: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a new, migrated database ``gatehold_<label>_<random>``, dropped after."""
    name = await create_database(label)
    engine = open_engine(database_dsn(name))
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
        await drop_database(name)


@contextmanager
def fresh_pg_dsn(label: str) -> Iterator[str]:
    """The DSN of a new, empty database ``gatehold_<label>_<random>``, dropped after
    (for processes a test starts, which migrate it themselves)."""
    name = asyncio.run(create_database(label))
    try:
        yield database_dsn(name)
    finally:
        asyncio.run(drop_database(name))
