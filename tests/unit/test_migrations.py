"""Alembic migrations create exactly the schema of tables.py, idempotently."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from gateway.errors import ConfigError, StoreUnavailable
from gateway.store.engine import CONNECT_TIMEOUT_SECONDS, open_engine, reading
from gateway.store.migrate import SCHEMA_REVISION, alembic_config, migrate
from gateway.store.tables import GENESIS_HASH, metadata
from tests.support.store_backends import StoreUnderTest


def schema_differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrating_a_fresh_store_yields_exactly_tables_py(
    empty_store: StoreUnderTest,
) -> None:
    engine = empty_store.engine
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(schema_differences) == []
        head = (await conn.execute(text("SELECT id, seq, hash FROM audit_head"))).all()
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert head == [(1, 0, GENESIS_HASH)]
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert sorted(v for (v,) in version) == sorted(heads) == [SCHEMA_REVISION]


async def test_processes_migrating_a_fresh_store_at_once_take_turns(
    empty_store: StoreUnderTest,
) -> None:
    """Replicas starting together all migrate the new store: the migration lock (an
    advisory lock on PostgreSQL, the write lock on SQLite) lets one create the tables
    and the others find them made. Without it the others fail on existing tables."""
    engines = [empty_store.engine, *(empty_store.open_engine() for _ in range(3))]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))
    finally:
        for other in engines[1:]:
            await other.dispose()
    async with empty_store.engine.connect() as conn:
        assert await conn.run_sync(schema_differences) == []
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert version == [(SCHEMA_REVISION,)]


async def test_the_sqlite_store_is_opened_for_durability(tmp_path: Path) -> None:
    """SQLite only: the pragmas are how the SQLite store gets its durability."""
    engine = open_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", 2, 10000, 1]


@pytest.mark.parametrize(
    ("dsn", "driver"),
    [
        ("sqlite:///var/gatehold.db", "sqlite+aiosqlite"),
        ("postgresql://gatehold@db.internal/gatehold", "postgresql+asyncpg"),
        ("postgres://gatehold@db.internal/gatehold", "postgresql+asyncpg"),
    ],
    ids=["a sqlite DSN uses aiosqlite", "a postgresql DSN uses asyncpg", "postgres is an alias"],
)
async def test_dsn_schemes_pick_the_async_driver(dsn: str, driver: str) -> None:
    engine = open_engine(dsn)
    assert engine.url.drivername == driver
    await engine.dispose()


def test_an_unsupported_dsn_is_a_config_error_that_says_what_to_use() -> None:
    with pytest.raises(ConfigError, match="sqlite:///path/to/file.db"):
        open_engine("mysql://root@localhost/gatehold")


async def test_migrating_an_unreachable_store_raises_store_unavailable(tmp_path: Path) -> None:
    """SQLite only: a file where the folder should be (PostgreSQL's outage is in the
    readiness tests, which stop a real server)."""
    (tmp_path / "blocked").write_text("a file where the store's folder should be\n")
    engine = open_engine(f"sqlite:///{tmp_path / 'blocked' / 'fresh.db'}")
    try:
        with pytest.raises(StoreUnavailable):
            await migrate(engine)
    finally:
        await engine.dispose()


def test_a_current_store_is_opened_without_loading_alembic(tmp_path: Path) -> None:
    """On SQLite only: what is checked is the import of Alembic, which does not depend
    on the backend (``migrate`` asks both with the same query)."""
    script = (
        "import asyncio, sys\n"
        "from gateway.store.engine import open_engine\n"
        "from gateway.store.migrate import migrate\n"
        "async def main():\n"
        f"    engine = open_engine('sqlite:///{tmp_path / 'store.db'}')\n"
        "    await migrate(engine)\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["True", "False"]  # the first run migrates, the second finds it current


async def test_a_postgresql_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    """A server that accepts connections but says nothing (a hung or half-partitioned
    database) is a ``StoreUnavailable`` after ``CONNECT_TIMEOUT_SECONDS``, not a minute."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = open_engine(f"postgresql://gatehold@127.0.0.1:{port}/gatehold")
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable):
            async with reading(engine) as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        elapsed = time.monotonic() - started
        await engine.dispose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert CONNECT_TIMEOUT_SECONDS - 0.5 <= elapsed < CONNECT_TIMEOUT_SECONDS + 3, elapsed
