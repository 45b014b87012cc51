"""Open the store and keep every SQLite/PostgreSQL difference in this one module.

* ``sqlite:///path`` becomes ``sqlite+aiosqlite`` with WAL, ``synchronous=FULL`` (an
  audit record must survive a power cut, I5), a 10 s busy timeout and foreign keys on.
  SQLAlchemy emits BEGIN itself: ``BEGIN IMMEDIATE`` by default, so a writing
  transaction takes the write lock up front and never fails half way with "database is
  locked"; :func:`reading` asks for a deferred BEGIN, which lets readers run beside a writer.
* ``postgresql://…`` becomes ``postgresql+asyncpg``; the audit head is locked with
  ``SELECT … FOR UPDATE`` and migrations with an advisory lock.

Store functions never leak driver errors: :func:`writing` and :func:`reading` turn them
into :class:`~gateway.errors.StoreUnavailable`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Table, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

from gateway.errors import ConfigError, StoreUnavailable
from gateway.store.data_folder import create_folder_on_connect
from gateway.store.tables import GENESIS_HASH, audit_head

DEFAULT_LOCK_TIMEOUT = 10.0
"""Seconds a SQLite write waits for another connection's lock (``busy_timeout``)."""


def sqlite_pragmas(lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> tuple[str, ...]:
    """What every SQLite connection runs first; ``lock_timeout`` in seconds."""
    return (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        f"PRAGMA busy_timeout={round(lock_timeout * 1000)}",
        "PRAGMA foreign_keys=ON",
    )


SQLITE_PRAGMAS = sqlite_pragmas()
READ_ONLY = "gatehold_read_only"
"""Execution option: on SQLite, begin with a deferred BEGIN instead of BEGIN IMMEDIATE."""
MIGRATION_LOCK_KEY = 0x6761746568  # "gateh"; a fixed PostgreSQL advisory lock key
CONNECT_TIMEOUT_SECONDS = 5.0
"""How long a new PostgreSQL connection may take (asyncpg waits 60 s by default): a
server that accepts but does not answer makes requests wait this long, then 503."""
DRIVER_ERRORS = (SQLAlchemyError, OSError)
"""What a driver raises when it cannot connect, read or commit (timeouts are OSErrors)."""


def open_engine(
    dsn: str, *, statement_timeout: float = 0.0, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> AsyncEngine:
    """An async engine for ``sqlite:///path`` or ``postgresql://user@host/db``.

    ``statement_timeout`` (PostgreSQL, seconds, 0 = none) bounds each statement, so a
    server that stops answering mid-query fails the statement (``StoreUnavailable``)
    instead of holding the connection until TCP gives up. ``lock_timeout`` (SQLite,
    seconds) is how long a write waits for another process's lock before it fails.
    """
    url = _async_url(dsn)
    if url.get_backend_name() == "sqlite":
        # Every connection is used through a Connection that commits or rolls back, so the
        # pool's extra ROLLBACK on return would only cost one more trip to the driver thread.
        engine = create_async_engine(url, pool_reset_on_return=None)
        _configure_sqlite(engine, sqlite_pragmas(lock_timeout))
        create_folder_on_connect(engine, url)  # every command opens the store here
        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": statement_timeout or None,
        },
    )


def _async_url(dsn: str) -> URL:
    try:
        url = make_url(dsn)
    except ArgumentError as exc:
        raise ConfigError([f"store DSN {dsn!r} is not a URL: {exc}"]) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        [
            f"store DSN scheme {url.drivername!r} is not supported: use sqlite:///path/to/file.db "
            "or postgresql://user@host/db"
        ]
    )


def _configure_sqlite(engine: AsyncEngine, pragmas: Sequence[str]) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that may write; commits on exit. Driver errors → ``StoreUnavailable``."""
    try:
        async with engine.begin() as conn:
            yield conn
    except DRIVER_ERRORS as exc:
        raise StoreUnavailable(f"store write failed: {_describe(exc)}") from exc


@asynccontextmanager
async def reading(engine: AsyncEngine, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction. Driver errors → ``StoreUnavailable``.

    SQLite begins it deferred, so it runs beside a writer and every statement in it sees
    one snapshot. On PostgreSQL ``snapshot=True`` asks for REPEATABLE READ to get the same.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if snapshot and engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    try:
        async with engine.connect() as conn:
            yield await conn.execution_options(**options)
    except DRIVER_ERRORS as exc:
        raise StoreUnavailable(f"store read failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig if orig is not None else exc}"


async def lock_audit_head(conn: AsyncConnection) -> tuple[int, str]:
    """Lock the audit chain head for this transaction; returns (last seq, last hash).

    SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE).
    PostgreSQL: row lock on the head, so writers in every replica take turns.
    """
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        await conn.execute(
            insert_ignoring_duplicates(conn, audit_head, ("id",)).values(
                id=1, seq=0, hash=GENESIS_HASH
            )
        )
        row = (await conn.execute(query)).one()
    return int(row.seq), str(row.hash)


async def lock_migrations(conn: AsyncConnection) -> None:
    """Let one process at a time migrate (SQLite: BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


async def lock_name(conn: AsyncConnection, name: str) -> None:
    """Make transactions that lock ``name`` take turns, until this one ends.

    SQLite: a writing transaction already holds the database's write lock (BEGIN
    IMMEDIATE), in every process. PostgreSQL: a transaction-scoped advisory lock on 64
    bits of the name's SHA-256, so transactions on other names do not wait.
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """An ``INSERT`` of the connection's dialect, for its ``ON CONFLICT`` clauses."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_duplicates(conn: AsyncConnection, table: Table, keys: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO NOTHING``."""
    stmt = dialect_insert(conn, table)
    result: Insert = stmt.on_conflict_do_nothing(index_elements=list(keys))
    return result


def upsert(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    values: dict[str, Any],
    *,
    update: Sequence[str],
) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET`` the columns named in ``update``.

    With nothing to update, an existing row is left alone (``DO NOTHING``).
    """
    stmt = dialect_insert(conn, table).values(**values)
    if not update:
        ignored: Insert = stmt.on_conflict_do_nothing(index_elements=list(keys))
        return ignored
    result: Insert = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in update}
    )
    return result
