"""Two processes append to one audit chain on PostgreSQL at once; ``gatehold audit
verify`` then finds it intact, counts every record, and still catches an edited one.

Each process is a real gateway audit writer (``trail_writer``: the settings' store,
key file and checkpoints), so the chain head's row lock (``SELECT … FOR UPDATE``) is
what keeps the two from writing the same seq or forking the chain.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from tests.support.audit_trail import gatehold
from tests.support.postgres import create_database, database_dsn, drop_database

RECORDS = 200
ROUNDS = 20
WRITER = """
import asyncio, sys, time
from pathlib import Path
from gateway.admin.audit_trail import trail_writer
from gateway.config.settings import load_settings
from gateway.model import AuditEntry

config, label, records, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def main():
    settings = load_settings(Path(config), env={}, cwd=Path(config).parent)
    async with trail_writer(settings) as (engine, writer):
        ready = Path(config).parent / f"ready-{label}"
        ready.touch()
        while len(list(ready.parent.glob("ready-*"))) < 2:  # start together
            await asyncio.sleep(0.01)
        per_round = records // rounds
        for start in range(0, records, per_round):
            await asyncio.gather(*(
                writer.begin(AuditEntry(kind="request", request_id=f"{label}-{n}",
                    actor=f"{label}@acme.test", tenant="acme", path=f"/api/invoices/{n}",
                    data={"n": n}))
                for n in range(start, start + per_round)
            ))

asyncio.run(main())
"""


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    name = await create_database("two_writers")
    try:
        yield database_dsn(name)
    finally:
        await drop_database(name)


async def test_two_processes_extend_one_chain_that_verifies(tmp_path: Path, pg_dsn: str) -> None:
    config = tmp_path / "gatehold.yaml"
    config.write_text(yaml.safe_dump({"data_dir": ".", "store": {"dsn": pg_dsn}}))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config), label, str(RECORDS), str(ROUNDS)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for label in ("a", "b")
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors

    db = await asyncpg.connect(pg_dsn)
    try:
        labels = [
            r["request_id"][0]
            for r in await db.fetch("SELECT request_id FROM audit_log ORDER BY seq")
        ]
        total = await db.fetchval("SELECT count(*) FROM audit_log")
        assert (labels.count("a"), labels.count("b")) == (RECORDS, RECORDS)
        switches = sum(1 for x, y in zip(labels, labels[1:], strict=False) if x != y)
        assert switches >= 2, "the two processes did not write at the same time"

        verified = gatehold("audit", "verify", config=config)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"{total} record(s) checked" in verified.stdout
        assert total == 2 * RECORDS

        await db.execute("UPDATE audit_log SET path = '/api/invoices/forged' WHERE seq = 17")
    finally:
        await db.close()
    tampered = gatehold("audit", "verify", config=config)
    assert tampered.returncode == 1
    assert "TAMPERED: seq 17: edited" in tampered.stdout
