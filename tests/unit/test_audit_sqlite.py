"""The direct SQLite append path writes exactly what the portable path writes.

SQLite only: the direct path is the SQLite backend's own (PostgreSQL always appends
through ``audit_log.insert_batch``; ``test_audit_postgres`` pins the two alike)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.audit_keys import AuditKey
from gateway.errors import StoreUnavailable
from gateway.model import AuditEntry
from gateway.store import audit_log
from gateway.store.audit_sqlite import SqliteAuditAppender
from gateway.store.engine import open_engine, writing
from gateway.store.migrate import migrate

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long").chain


def entries(start: int, count: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            kind="request",
            request_id=f"req-{n}",
            actor="alice@acme.test",
            tenant="acme",
            route="invoice-read",
            decision="allow",
            reason="role-allows",
            method="GET",
            path=f"/api/invoices/{n}",
            data={"roles": ["standard"], "note": "naïve \x00 text"},
        )
        for n in range(start, start + count)
    ]


def texts(batch: list[AuditEntry]) -> list[str]:
    return [audit_log.canonical_json(e.data) for e in batch]


async def test_both_paths_write_the_same_rows_and_one_chain(tmp_path: Path) -> None:
    portable, direct = tmp_path / "portable.db", tmp_path / "direct.db"
    engines = [open_engine(f"sqlite:///{db}") for db in (portable, direct)]
    for engine in engines:
        await migrate(engine)
    appender = SqliteAuditAppender(str(direct), key=KEY)
    for start, count in ((1, 1), (2, 50), (52, 3)):
        batch = entries(start, count)
        async with writing(engines[0]) as conn:
            expected = await audit_log.insert_batch(
                conn, batch, ts=1000.5, key=KEY, data_json=texts(batch)
            )
        assert appender.append(batch, ts=1000.5, data_json=texts(batch)) == expected

    async with writing(engines[1]) as conn:  # the portable path continues the same chain
        await audit_log.insert_batch(conn, entries(55, 2), ts=1001.0, key=KEY)
    appender.append(entries(57, 2), ts=1002.0, data_json=texts(entries(57, 2)))
    assert await audit_log.verify_chain(engines[1], key=KEY) == []
    async with engines[1].connect() as conn:
        assert (await conn.execute(text("SELECT max(seq) FROM audit_log"))).scalar() == 58
    appender.close()
    for engine in engines:
        await engine.dispose()


async def test_a_refused_commit_raises_store_unavailable_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    engine = open_engine(f"sqlite:///{db}")
    await migrate(engine)
    appender = SqliteAuditAppender(str(db), key=KEY)
    appender.append(entries(1, 2), ts=1.0, data_json=texts(entries(1, 2)))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    with pytest.raises(StoreUnavailable, match="disk full"):
        appender.append(entries(3, 5), ts=2.0, data_json=texts(entries(3, 5)))
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse"))
    rows = appender.append(entries(3, 1), ts=3.0, data_json=texts(entries(3, 1)))
    assert rows[0].seq == 3  # nothing of the refused batch was kept
    assert await audit_log.verify_chain(engine, key=KEY) == []
    appender.close()
    await engine.dispose()


@pytest.mark.parametrize("how", ["moved", "deleted"])
async def test_a_database_file_moved_or_deleted_under_the_appender_is_an_outage(
    tmp_path: Path, how: str
) -> None:
    database, away = tmp_path / "gatehold.db", tmp_path / "away.db"
    engine = open_engine(f"sqlite:///{database}")
    await migrate(engine)
    await engine.dispose()
    appender = SqliteAuditAppender(str(database), key=KEY)
    appender.append(entries(1, 1), ts=1.0, data_json=texts(entries(1, 1)))
    if how == "moved":
        database.rename(away)
    else:
        database.unlink()
    with pytest.raises(StoreUnavailable, match="no longer the file"):
        appender.append(entries(2, 1), ts=2.0, data_json=texts(entries(2, 1)))
    with pytest.raises(StoreUnavailable, match="unable to open"):
        appender.append(entries(2, 1), ts=2.0, data_json=texts(entries(2, 1)))
    assert not database.exists(), "a new, empty audit log was created"
    if how == "moved":
        away.rename(database)
        rows = appender.append(entries(2, 1), ts=3.0, data_json=texts(entries(2, 1)))
        assert [row.seq for row in rows] == [2], "the chain goes on where it stopped"
    appender.close()
