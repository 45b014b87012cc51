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
ANSWERS_BEFORE_KILL = 60
"""Answers each start gives before it may be killed: the kill lands in steady load."""
KILL_AFTER = (0.0, 0.8)
"""Seconds more of load before each kill (chosen at random in this range, seeded)."""
SERVING_DEADLINE = 90.0
"""The longest a start may take to give its answers (a busy machine is slow)."""


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


async def audited(dsn: str) -> dict[str, str]:
    """request id → decision of every committed ``request`` row."""
    engine = open_engine(dsn)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT request_id, decision FROM audit_log WHERE kind = 'request'")
            )
            return {row.request_id: row.decision for row in rows}
    finally:
        await engine.dispose()


async def serving_load(load: Load, gateway: ServedGroup) -> None:
    """Until this start of the gateway has answered ``ANSWERS_BEFORE_KILL`` calls."""
    target = load.answered + ANSWERS_BEFORE_KILL
    async with asyncio.timeout(SERVING_DEADLINE):
        while load.answered < target:
            assert gateway.members, gateway.log.read_text()[-3000:]
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(600)
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
                await serving_load(load, gateway)
                await asyncio.sleep(pace.uniform(*KILL_AFTER))
                killed_processes.append(await asyncio.to_thread(gateway.kill))
                await asyncio.to_thread(gateway.start)
            await serving_load(load, gateway)  # the last start serves, then stops normally
        finally:
            load.stopping.set()
            await clients
            await asyncio.to_thread(gateway.stop)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{ledger_url}/__ledger/hits") as reply:
                hits: dict[str, int] = await reply.json()

    hits.pop("-", None)  # the gateway's own owner lookups carry no request id
    forwarded = set(hits)
    decisions = await audited(store)
    allowed = {request_id for request_id, decision in decisions.items() if decision == "allow"}
    lost = forwarded - allowed
    answered = {request_id for request_id, _ in load.answers}
    verified = await asyncio.to_thread(gatehold, "audit", "verify", config=config)
    successes = {request_id for request_id, status in load.answers if status in (200, 201)}
    print(
        f"\ncrash consistency ({store.split(':')[0]}): kills={KILLS} "
        f"processes killed={sum(killed_processes)} sent={load.sent} answered={load.answered} "
        f"refused={load.refused} cut off={load.cut_off} "
        f"statuses={dict(sorted(load.statuses.items()))} "
        f"forwarded={len(forwarded)} (unanswered, cut off by a kill: {len(forwarded - successes)}) "
        f"audited={len(forwarded & allowed)} lost={len(lost)}; "
        f"answered but unaudited={len(answered - set(decisions))}"
    )
    assert all(n == WORKERS for n in killed_processes), killed_processes
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    assert not lost, f"forwarded without a committed record: {sorted(lost)[:5]}"
    assert all(count == 1 for count in hits.values()), "a request was forwarded twice"
    assert 500 not in load.statuses, gateway.log.read_text()[-3000:]
    assert load.cut_off > 0, "no call was cut off: the kills did not land mid-load"
    assert len(forwarded) > 100, "too little load reached the app to mean anything"
    assert successes <= forwarded, "a success Ledger never saw"
    assert answered <= set(decisions), "an answer (allowed or denied) without its record"
