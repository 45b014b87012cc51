"""The audit chain's append path on embedded SQLite: one batch, one thread hop, one fsync.

Every forwarded request waits for its batch's commit (I5), so this path sets the
gateway's latency floor. Through the async engine a batch costs a trip to the driver
thread per statement (begin, head, insert, head update, commit) and SQLAlchemy's
per-row parameter processing; here the whole transaction runs as plain ``sqlite3``
calls inside one call on a dedicated thread. The rows, the keyed hash chain and the
durability (WAL, ``synchronous=FULL``) are exactly those of ``audit_log.insert_batch``,
which the PostgreSQL backend keeps using; a test checks the two write identical rows.

The connection stays open between batches, and an open SQLite file outlives its name:
were the database moved, replaced or deleted under a running gateway, commits would
go on "durably" into a file nobody will ever read (or that vanishes with the process),
while ``gatehold audit verify`` reads the file at the configured path. So each batch
first checks that the path still names the file the connection opened; if not, the
batch fails (503, nothing forwarded) and the next one reconnects, which succeeds once
the file is back. It never creates a database either (``mode=rw``): a missing file is
an outage, not a new, empty audit log.
"""

from __future__ import annotations

import operator
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.dialects import sqlite

from gateway.errors import StoreUnavailable
from gateway.model import AuditEntry
from gateway.store import tables
from gateway.store.audit_log import AuditRow, chain
from gateway.store.engine import DEFAULT_LOCK_TIMEOUT, sqlite_pragmas

_COMPILED = tables.audit_log.insert().compile(dialect=sqlite.dialect())
_INSERT = str(_COMPILED)
_PARAMETERS = operator.attrgetter(*(_COMPILED.positiontup or ()))
"""A row's values in the order of the statement's ``?`` parameters."""


class SqliteAuditAppender:
    """Appends batches to the audit chain over its own ``sqlite3`` connection.

    Not thread-safe: call ``append`` from one thread at a time (the audit writer owns a
    single-thread executor for it). Other processes writing the same file take turns
    through SQLite's write lock (``BEGIN IMMEDIATE``), as with the async engine.
    """

    def __init__(
        self, database: str, *, key: bytes, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        self._database = database
        self._key = key
        self._pragmas = sqlite_pragmas(lock_timeout)
        self._db: sqlite3.Connection | None = None
        self._opened: tuple[int, int] | None = None
        """(device, inode) of the file the open connection reads and writes."""

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            uri = f"{Path(self._database).absolute().as_uri()}?mode=rw"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            try:
                for pragma in self._pragmas:
                    db.execute(pragma)
            except BaseException:
                db.close()
                raise
            self._db, self._opened = db, file_identity(self._database)
        elif file_identity(self._database) != self._opened:
            raise sqlite3.OperationalError(
                f"{self._database} is no longer the file this connection opened "
                "(moved, replaced or deleted)"
            )
        return self._db

    def append(
        self, entries: Sequence[AuditEntry], *, ts: float, data_json: Sequence[str]
    ) -> list[AuditRow]:
        """Number, hash and durably commit ``entries``; ``StoreUnavailable`` if it cannot."""
        if not entries:
            return []
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                if head is None:
                    db.execute(
                        "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?)",
                        (tables.GENESIS_HASH,),
                    )
                    head = (0, tables.GENESIS_HASH)
                rows = chain(
                    entries,
                    last_seq=int(head[0]),
                    last_hash=str(head[1]),
                    ts=ts,
                    key=self._key,
                    data_json=data_json,
                )
                db.executemany(_INSERT, [_PARAMETERS(row) for row in rows])
                db.execute(
                    "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                    (rows[-1].seq, rows[-1].hash),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            self.close()  # reconnect next time: the file may have been replaced or repaired
            raise StoreUnavailable(
                f"audit store write failed: {type(error).__name__}: {error}"
            ) from error
        return rows

    def close(self) -> None:
        self._opened = None
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; ``None`` if nothing is there."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
