"""A consistent copy of the store, and putting one back: the backend-specific half of
``gatehold backup`` and ``gatehold restore``.

* SQLite runs in WAL mode: the database file alone may lack committed transactions that
  are still in ``-wal``, so copying the file while a gateway runs can give a broken or
  stale store. The copy goes through SQLite's online backup API instead, in one step
  (a single read transaction, so one snapshot) while writers carry on.
* PostgreSQL is dumped by ``pg_dump --format=custom`` inside a snapshot this module
  exports (``pg_export_snapshot``), so the chain head written to the manifest is read
  from exactly the data the dump holds.

Each snapshot returns the audit chain's head in the copy (``ChainHead``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from gateway.store import tables
from gateway.store.data_folder import ensure_data_folder, sqlite_file
from gateway.store.engine import open_engine, reading
from gateway.store.pg_tools import find_pg_program, libpq_target, run_pg_program

IN_USE = (
    "{database} is in use (a gateway or another command has it open): stop the gateway "
    "first, then restore"
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the audit chain ends in a copy of the store."""

    seq: int
    """The last record's sequence number (0: no record)."""
    hash: str
    """That record's hash (the genesis hash when there is none)."""


@dataclass(frozen=True, slots=True)
class SqliteStore:
    database: Path


@dataclass(frozen=True, slots=True)
class PostgresStore:
    dsn: str
    program: Path
    """``pg_dump`` to back up, ``pg_restore`` to restore."""


def locate_store(
    dsn: str, *, program: str, env: Mapping[str, str]
) -> SqliteStore | PostgresStore | str:
    """The store ``dsn`` names, with the PostgreSQL ``program`` it needs; or why not."""
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite":
        database = sqlite_file(url)
        if database is None:
            return "the store is an in-memory SQLite database: it cannot be backed up or restored"
        return SqliteStore(database)
    found = find_pg_program(program, env)
    return PostgresStore(dsn, found) if isinstance(found, Path) else found


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (refusing an existing one), to be filled."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# ---------------------------------------------------------------- SQLite


def snapshot_sqlite(database: Path, copy: Path) -> ChainHead:
    """Copy the live ``database`` to the new file ``copy`` (0600); blocks, so call it off
    the event loop. Raises ``sqlite3.Error`` if the database cannot be read."""
    private_file(copy)
    source = sqlite3.connect(database, timeout=10)
    try:
        target = sqlite3.connect(copy, isolation_level=None)
        try:
            source.backup(target)  # pages=-1: one step, so one consistent snapshot
            target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file
            return _sqlite_head(target)
        finally:
            target.close()
    finally:
        source.close()


def _sqlite_head(connection: sqlite3.Connection) -> ChainHead:
    row = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return ChainHead(int(row[0]), str(row[1])) if row else ChainHead(0, tables.GENESIS_HASH)


def sqlite_in_use(database: Path) -> bool:
    """Whether some connection holds ``database`` open (a running gateway does)."""
    if not database.exists():
        return False
    connection = _exclusive(database)
    if connection is None:
        return True
    connection.close()
    return False


def restore_sqlite(copy: Path, database: Path) -> str | None:
    """Replace ``database``'s content with ``copy``'s; ``None``, or why it did not."""
    ensure_data_folder(database.parent)
    if not database.exists():
        private_file(database)
    target = _exclusive(database)
    if target is None:
        return IN_USE.format(database=database)
    try:
        source = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
        try:
            # Through SQLite, not a file copy: a -wal left by the old database can never
            # be replayed over the restored one.
            source.backup(target)
        finally:
            source.close()
    finally:
        target.close()
    return None


def _exclusive(database: Path) -> sqlite3.Connection | None:
    """A connection holding ``database`` exclusively until closed; ``None`` if in use.

    In exclusive locking mode SQLite takes the file's exclusive lock without waiting;
    every other open connection, even an idle one in WAL mode, holds a lock that stops it.
    """
    connection = sqlite3.connect(database, isolation_level=None, timeout=0)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")
    except sqlite3.OperationalError:
        connection.close()
        return None
    return connection


# ---------------------------------------------------------------- PostgreSQL


async def snapshot_postgres(
    store: PostgresStore, copy: Path, *, env: Mapping[str, str]
) -> ChainHead | str:
    """Dump the store with ``pg_dump`` to the new file ``copy`` (0600); the head, or why not."""
    private_file(copy)
    engine = open_engine(store.dsn)
    try:
        async with reading(engine, snapshot=True) as conn:
            snapshot = await conn.scalar(text("SELECT pg_export_snapshot()"))
            head = select(tables.audit_head.c.seq, tables.audit_head.c.hash)
            row = (await conn.execute(head)).first()
            args = ["--format=custom", f"--snapshot={snapshot}", f"--file={copy}"]
            target = libpq_target(store.dsn)
            failed = await run_pg_program(store.program, args, target=target, env=env)
    finally:
        await engine.dispose()
    if failed is not None:
        return failed
    return ChainHead(int(row.seq), str(row.hash)) if row else ChainHead(0, tables.GENESIS_HASH)


async def restore_postgres(
    copy: Path, store: PostgresStore, *, env: Mapping[str, str]
) -> str | None:
    """Replace the objects of the dump ``copy`` in the store with ``pg_restore``, all or
    nothing (one transaction); ``None``, or why it failed."""
    args = ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(copy)]
    return await run_pg_program(store.program, args, target=libpq_target(store.dsn), env=env)
