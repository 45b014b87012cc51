"""The keyed chain on PostgreSQL: the same rows as SQLite, the same checks.

Runs against the server in ``GATEHOLD_TEST_PG_DSN`` in a database of its own, made
and dropped here, so it never meets another test's tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter
from gateway.audit_checkpoints import CheckpointWriter, read_checkpoints
from gateway.audit_keys import AuditKey
from gateway.model import AuditEntry
from gateway.store import audit_log
from gateway.store.audit_sqlite import SqliteAuditAppender
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.postgres import fresh_pg_engine

KEY = AuditKey.from_secret(b"postgres test audit secret, 32+ bytes")


@pytest.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_pg_engine("audit") as engine:
        yield engine


def entries(start: int, count: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            kind="request",
            request_id=f"req-{n}",
            actor="zoë@acme.test",
            tenant="acme",
            path=f"/api/invoices/{n}",
            data={"n": n, "note": "naïve \x00 text"},
        )
        for n in range(start, start + count)
    ]


async def test_postgres_and_sqlite_write_identical_keyed_rows(
    pg_engine: AsyncEngine, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "direct.db"
    sqlite_engine = open_engine(f"sqlite:///{sqlite_file}")
    await migrate(sqlite_engine)
    appender = SqliteAuditAppender(str(sqlite_file), key=KEY.chain)
    for start, count in ((1, 1), (2, 40), (42, 3)):
        batch = entries(start, count)
        data = [audit_log.canonical_json(e.data) for e in batch]
        async with pg_engine.begin() as conn:
            written = await audit_log.insert_batch(
                conn, batch, ts=1700000000.25, key=KEY.chain, data_json=data
            )
        assert appender.append(batch, ts=1700000000.25, data_json=data) == written
    appender.close()
    await sqlite_engine.dispose()
    stored = [row async for row in audit_log.iter_rows(pg_engine)]
    assert [row.seq for row in stored] == list(range(1, 45))
    assert await audit_log.verify_chain(pg_engine, key=KEY.chain) == []


async def test_a_truncated_postgres_log_is_caught_by_its_checkpoints(
    pg_engine: AsyncEngine, tmp_path: Path
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    writer = AuditWriter(
        pg_engine, key=KEY, checkpoints=CheckpointWriter(file, KEY), checkpoint_every=0
    )
    await writer.start()
    for batch in (entries(1, 5), entries(6, 5)):
        for entry in batch:
            writer.record(entry)
        await writer.begin(entries(99, 1)[0])
    await writer.close()
    checkpoints, problems = read_checkpoints(file, KEY)
    assert problems == []
    assert await audit_log.verify_chain(pg_engine, key=KEY.chain, checkpoints=checkpoints) == []

    async with pg_engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq > 9"))
        await conn.execute(
            text("UPDATE audit_head SET seq = 9, hash = (SELECT hash FROM audit_log WHERE seq = 9)")
        )
    found = await audit_log.verify_chain(pg_engine, key=KEY.chain, checkpoints=checkpoints)
    assert len(found) == 1 and found[0].startswith("seq 10-12: truncated"), found
