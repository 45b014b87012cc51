"""Claiming outbox rows: senders racing on one store never hold the same message.

Many claimers run at once against one store (a SQLite file, and PostgreSQL with one
engine per claimer, as separate gateways have), each through its own connection pool;
every message must be claimed by exactly one of them, and only the holder of a claim
may remove or reschedule it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import mail_outbox as store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.postgres import create_database, database_dsn, drop_database

MESSAGES = 60
CLAIMERS = 6


@asynccontextmanager
async def engines(kind: str, tmp_path: Path) -> AsyncIterator[list[AsyncEngine]]:
    """One migrated store of ``kind``, and ``CLAIMERS`` engines on it."""
    name = ""
    if kind == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'gatehold.db'}"
    else:
        name = await create_database("outbox_claims")
        dsn = database_dsn(name)
    opened = [open_engine(dsn) for _ in range(CLAIMERS)]
    try:
        await migrate(opened[0])
        yield opened
    finally:
        for engine in opened:
            await engine.dispose()
        if name:
            await drop_database(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_racing_claimers_claim_each_message_exactly_once(tmp_path: Path, kind: str) -> None:
    async with engines(kind, tmp_path) as opened:
        now = time.time()
        for n in range(MESSAGES):
            mail = await store.enqueue(
                opened[0],
                kind="magic-link",
                recipient=f"p{n}@acme.test",
                sealed="sealed",
                now=now,
                expires_at=now + 600,
                claim="first",
                lease=0.0,  # released at once: every message is due and unclaimed
            )
            assert mail.id > 0

        async def claimer(index: int) -> list[int]:
            claimed: list[int] = []
            for _ in range(5):
                batch = await store.claim_due(
                    opened[index], now=time.time(), lease=60, claim=f"c{index}", limit=15
                )
                claimed += [m.id for m in batch]
            return claimed

        results = await asyncio.gather(*(claimer(i) for i in range(CLAIMERS)))
        counts = Counter(mail_id for claimed in results for mail_id in claimed)
        assert len(counts) == MESSAGES, f"{MESSAGES - len(counts)} messages never claimed"
        assert max(counts.values()) == 1, "a message was claimed twice"
        # Only the holder may remove it: another claim's remove does nothing.
        holder = next(i for i, claimed in enumerate(results) if claimed)
        first_id = results[holder][0]
        stranger = store.QueuedMail(first_id, "magic-link", "", "", now, now + 600, 0, "other")
        assert not await store.remove(opened[0], stranger)
        mine = store.QueuedMail(first_id, "magic-link", "", "", now, now + 600, 0, f"c{holder}")
        assert await store.remove(opened[0], mine)
        assert await store.count(opened[0]) == MESSAGES - 1
        print(f"{kind}: {MESSAGES} messages, {CLAIMERS} racing claimers, each claimed once")
