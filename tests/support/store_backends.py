"""Store tests run on both backends: the ``store_under_test`` and ``store_engine`` fixtures,
parametrized ``sqlite`` / ``postgresql``.

SQLite is a file in the test's ``tmp_path``. On PostgreSQL (the server
``GATEHOLD_TEST_PG_DSN`` names) each test gets a schema of its own, migrated by the real
``migrate``, inside one database per test process (per xdist worker): a schema costs a
tenth of a ``CREATE DATABASE`` (which copies and syncs files). Every connection of the
test's engines has the schema as its ``search_path``. Tests that hand a DSN to the code
under test (settings) take ``store_dsn``: a whole database of their own.

Migrating a schema costs about two seconds on a loaded machine, for every PostgreSQL
case. So the first migrated schema of a test process is dumped (``pg_dump``: tables,
indexes, constraints, sequences and rows, the revision among them) and every later one
is that dump replayed into the test's new schema; the real ``migrate`` then runs on it
and finds nothing to do. Tests of the migrations themselves take ``empty_store``.

Without the server a PostgreSQL case is a missing component (a failure under
``GATEHOLD_REQUIRE_ALL=1``), never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.postgres import create_database, database_dsn, drop_database

BACKENDS = ("sqlite", "postgresql")


class PgTestDatabase:
    """The database this test process puts its schemas in, made on first use."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.name: str | None = None
        self.migrated_dump: tuple[str, str] | None = None
        """(schema, ``pg_dump`` of it) once a migrated schema was dumped."""

    async def dsn(self) -> str:
        if self.name is None:
            self.name = await create_database(self.label)
        return database_dsn(self.name)


@pytest.fixture(scope="session")
def pg_test_database() -> Iterator[PgTestDatabase]:
    """One database per test process; xdist workers each make their own."""
    database = PgTestDatabase(f"tests_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    yield database
    if database.name is not None:
        asyncio.run(drop_database(database.name))


@dataclass(frozen=True, slots=True)
class StoreUnderTest:
    """A test's store: its backend, where it is, and the engine the test uses."""

    backend: str
    dsn: str
    schema: str | None
    """PostgreSQL: the test's schema, on the ``search_path`` of every connection."""
    engine: AsyncEngine

    def open_engine(self) -> AsyncEngine:
        """Another engine on this store (its own pool, as another process would have)."""
        return _engine_on(self.dsn, self.schema)


def _engine_on(dsn: str, schema: str | None) -> AsyncEngine:
    engine = open_engine(dsn)
    if schema is not None:

        @event.listens_for(engine.sync_engine, "connect", insert=True)
        def _use_schema(dbapi_connection: Any, _record: Any) -> None:
            # Outside a transaction: a SET inside the driver's implicit one would be
            # undone by the first rollback, and the test would write to ``public``.
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f'SET search_path TO "{schema}"')
            finally:
                cursor.close()
                dbapi_connection.autocommit = False

    return engine


@asynccontextmanager
async def _pg_schema(database: PgTestDatabase) -> AsyncIterator[tuple[str, str]]:
    """A new empty schema in the process's test database: (database DSN, schema)."""
    dsn = await database.dsn()
    schema = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield dsn, schema
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


@asynccontextmanager
async def backend_store(
    backend: str, tmp_path: Path, database: PgTestDatabase, *, migrated: bool = True
) -> AsyncIterator[StoreUnderTest]:
    """A new store on ``backend``, migrated unless ``migrated=False``."""
    if backend == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'gatehold.db'}"
        async with _store(backend, dsn, None, migrated=migrated) as store:
            yield store
        return
    async with _pg_schema(database) as (dsn, schema):
        if migrated and database.migrated_dump is not None:
            await _replay(dsn, schema, *database.migrated_dump)
        async with _store(backend, dsn, schema, migrated=migrated) as store:
            if migrated and database.migrated_dump is None:
                database.migrated_dump = (schema, await asyncio.to_thread(_dump, dsn, schema))
            yield store


def _dump(dsn: str, schema: str) -> str:
    """``pg_dump`` of one schema, replayable with plain SQL (rows as INSERTs)."""
    if shutil.which("pg_dump") is None:
        return ""
    done = subprocess.run(
        ["pg_dump", "--schema", schema, "--inserts", "--no-owner", "--no-privileges", dsn],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


async def _replay(dsn: str, schema: str, dumped_schema: str, dump: str) -> None:
    """The dumped schema's tables and rows, made again in the empty ``schema``."""
    if not dump:
        return
    statements = dump.replace(f'"{dumped_schema}"', f'"{schema}"').replace(dumped_schema, schema)
    statements = "\n".join(
        line
        for line in statements.splitlines()
        # psql's own commands (\restrict) and the schema, which exists already
        if not line.startswith("\\") and not line.startswith("CREATE SCHEMA ")
    )
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statements)
    finally:
        await connection.close()


@asynccontextmanager
async def _store(
    backend: str, dsn: str, schema: str | None, *, migrated: bool
) -> AsyncIterator[StoreUnderTest]:
    engine = _engine_on(dsn, schema)
    try:
        if migrated:
            await migrate(engine)
        yield StoreUnderTest(backend, dsn, schema, engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def store_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, pg_test_database: PgTestDatabase
) -> AsyncIterator[StoreUnderTest]:
    """A migrated store of the test's own, on SQLite and on PostgreSQL."""
    async with backend_store(request.param, tmp_path, pg_test_database) as made:
        yield made


@pytest.fixture
def store_engine(store_under_test: StoreUnderTest) -> AsyncEngine:
    """The engine of ``store_under_test``: a migrated store, on SQLite and on PostgreSQL."""
    return store_under_test.engine


@pytest.fixture(params=BACKENDS)
async def empty_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_test_database: PgTestDatabase
) -> AsyncIterator[StoreUnderTest]:
    """A store of the test's own with no tables yet, on SQLite and on PostgreSQL."""
    async with backend_store(request.param, tmp_path, pg_test_database, migrated=False) as made:
        yield made


@pytest.fixture(params=BACKENDS)
async def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The DSN of an empty store of the test's own (on PostgreSQL a whole database), for
    code under test that opens the store from settings."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gatehold.db'}"
        return
    name = await create_database("dsn")
    try:
        yield database_dsn(name)
    finally:
        await drop_database(name)
