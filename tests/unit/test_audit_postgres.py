"""The keyed chain on PostgreSQL: the same rows as SQLite, the same checks.

Runs against the server in ``GATEHOLD_TEST_PG_DSN`` in a database of its own, made
and dropped here, so it never meets another test's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter
from gateway.audit_checkpoints import CheckpointWriter, read_checkpoints
from gateway.audit_keys import AuditKey
from gateway.errors import StoreUnavailable
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


class CommitAnswerLost:
    """A TCP relay to PostgreSQL that, once ``armed``, passes the next ``COMMIT`` to the
    server, lets it commit, and cuts the connection before the answer reaches the client:
    a commit whose outcome the writer cannot know (the server did commit)."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self.armed = False
        self.cut = 0

    async def start(self) -> tuple[asyncio.Server, int]:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return server, int(server.sockets[0].getsockname()[1])

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await asyncio.open_connection(*self._upstream)
        lost = asyncio.Event()

        async def upward() -> None:
            while data := await client.read(65536):
                if self.armed and b"COMMIT" in data:
                    self.armed = False
                    self.cut += 1
                    lost.set()  # before it is sent: no byte of its answer gets through
                    to_server.write(data)
                    await to_server.drain()
                    await asyncio.sleep(5)  # until the answer comes (then all is cut)
                    return
                to_server.write(data)
                await to_server.drain()

        async def downward() -> None:
            # Relays the server's answers until one comes after the armed COMMIT: the
            # commit's answer, proof that the server committed, which is dropped.
            while (data := await server.read(65536)) and not lost.is_set():
                to_client.write(data)
                await to_client.drain()

        with contextlib.suppress(ConnectionError):
            done, pending = await asyncio.wait(
                [asyncio.create_task(upward()), asyncio.create_task(downward())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
        to_client.close()
        to_server.close()


async def test_a_commit_whose_answer_is_lost_refuses_its_request_and_the_chain_goes_on(
    pg_engine: AsyncEngine,
) -> None:
    """The connection drops after the server got ``COMMIT``: the waiter is refused (its
    request is not forwarded), although the record was committed. Nothing is retried;
    the next batch reads the head again, so it follows that record: no fork, no gap."""
    url = pg_engine.url
    assert url.host is not None and url.port is not None
    relay = CommitAnswerLost(url.host, url.port)
    server, port = await relay.start()
    engine = open_engine(url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    try:
        first, second, third = entries(1, 3)
        assert (await writer.begin(first)).seq == 1
        relay.armed = True
        with pytest.raises(StoreUnavailable):
            await writer.begin(second)
        assert relay.cut == 1
        assert (await writer.begin(third)).seq == 3, "the next batch follows the lost answer"
    finally:
        await writer.close()
        await engine.dispose()
        server.close()
        await server.wait_closed()
    async with pg_engine.connect() as conn:
        found = await conn.execute(text("SELECT seq, request_id FROM audit_log ORDER BY seq"))
        # Recorded but refused: the safe side of I5 (never forwarded unrecorded).
        assert [tuple(row) for row in found] == [(1, "req-1"), (2, "req-2"), (3, "req-3")]
    assert await audit_log.verify_chain(pg_engine, key=KEY.chain) == []
    assert writer.failures == 1
