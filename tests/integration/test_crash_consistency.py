"""I5 across crashes: ``gatehold serve`` SIGKILLed under load, again and again.

A real ``gatehold serve --workers 2`` (master and worker in one process group) runs in
front of a real Ledger that counts every request by its ``X-Request-Id``. Thirty
clients send allowed and denied calls of the demo people; mid-load the whole group is
killed with SIGKILL and started again on the same data folder, ``KILLS`` times, then
the load runs once more against the last start, which is stopped normally.

Afterwards the real ``gatehold audit verify`` must pass (no torn chain, no checkpoint
ahead of the log), and every request id Ledger received must carry a committed
``allow`` record: ``lost`` = forwarded − audited must be 0. The counts are printed
(run with ``-s`` to see them). On the embedded SQLite store and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from gateway.store.engine import open_engine
from tests.integration.test_cli import gatehold
from tests.integration.test_postgres_restart_under_load import people_with_sessions
from tests.support.crashing import Load, ServedGroup, serve_config
from tests.support.postgres import create_database, database_dsn, drop_database
from tests.support.stack import ledger_server

KILLS = 4
WORKERS = 2
CLIENTS = 30
LOAD_BEFORE_KILL = (0.8, 1.6)
"""Seconds of load before each kill (chosen at random in this range, seeded)."""


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'gatehold.db'}"
        return
    name = await create_database("crash")
    try:
        yield database_dsn(name)
    finally:
        await drop_database(name)


async def audited_allows(dsn: str) -> set[str]:
    engine = open_engine(dsn)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT request_id FROM audit_log WHERE kind = 'request' AND decision = 'allow'"
                )
            )
            return {row.request_id for row in rows}
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sigkill_under_load_loses_no_audit_record(tmp_path: Path, store: str) -> None:
    async with ledger_server(tmp_path) as ledger_url:
        config, port = serve_config(tmp_path, ledger_url=ledger_url, dsn=store, workers=WORKERS)
        sessions = await people_with_sessions(config)
        gateway = ServedGroup(config, port, tmp_path / "serve.log")
        load = Load(f"http://127.0.0.1:{port}", sessions, clients=CLIENTS)
        pace = random.Random(17)
        killed_processes = []
        await asyncio.to_thread(gateway.start)
        clients = asyncio.create_task(load.run())
        try:
            for _ in range(KILLS):
                await asyncio.sleep(pace.uniform(*LOAD_BEFORE_KILL))
                assert load.answered > 0, gateway.log.read_text()[-3000:]
                killed_processes.append(await asyncio.to_thread(gateway.kill))
                await asyncio.to_thread(gateway.start)
            await asyncio.sleep(1.0)  # the last start serves, then stops normally
        finally:
            load.stopping.set()
            await clients
            await asyncio.to_thread(gateway.stop)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{ledger_url}/__ledger/hits") as reply:
                hits: dict[str, int] = await reply.json()

    hits.pop("-", None)  # the gateway's own owner lookups carry no request id
    forwarded = set(hits)
    audited = await audited_allows(store)
    lost = forwarded - audited
    verified = await asyncio.to_thread(gatehold, "audit", "verify", config=config)
    print(
        f"\ncrash consistency ({store.split(':')[0]}): kills={KILLS} "
        f"processes killed={sum(killed_processes)} sent={load.sent} answered={load.answered} "
        f"refused={load.refused} cut off={load.cut_off} "
        f"statuses={dict(sorted(load.statuses.items()))} "
        f"forwarded={len(forwarded)} audited={len(forwarded & audited)} lost={len(lost)}"
    )
    assert all(n == WORKERS for n in killed_processes), killed_processes
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    assert not lost, f"forwarded without a committed record: {sorted(lost)[:5]}"
    assert all(count == 1 for count in hits.values()), "a request was forwarded twice"
    assert 500 not in load.statuses, gateway.log.read_text()[-3000:]
    assert load.cut_off > 0, "no call was cut off: the kills did not land mid-load"
    assert len(forwarded) > 100, "too little load reached the app to mean anything"
    successes = {request_id for request_id, status in load.answers if status in (200, 201)}
    assert successes <= forwarded, "a success Ledger never saw"
