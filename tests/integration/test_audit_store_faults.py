"""I5 when the audit store fails: locked, full or gone.

Each fault is made by real means, never by patching the gateway: another process holds
the SQLite file's write lock; the data folder lies on a size-limited file system that
is filled up; the database file is replaced by something SQLite cannot open. In each
case a request for an object its caller may read is answered 503 (problem JSON
``audit-unavailable`` with ``Retry-After``), nothing reaches the app (hits counted by
request id), and once the fault is gone the next request is forwarded and audited —
without a restart. The audit trail then verifies, and no record is lost or written twice.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg
from sqlalchemy import text

from gateway.admin.audit_trail import verify_trail
from gateway.app import ENGINE
from tests.integration.test_postgres_restart_under_load import people_with_sessions
from tests.support.crashing import ServedGroup, serve_config
from tests.support.image_root import require_tools
from tests.support.postgres import create_database, database_dsn, drop_database
from tests.support.stack import Stack, ledger_server, running_stack
from tests.support.store_faults import fill, inside, on_small_tmpfs, sqlite_locked

LOCK_TIMEOUT = 3.0
"""The gateway's ``store.lock_timeout`` in these tests (10 s by default)."""
ANSWER_BOUND = LOCK_TIMEOUT + 2.5
"""The longest a refused request may wait for its 503: one lock timeout, not one per
transaction queued behind the lock."""
ALICE_OWN = "/api/invoices/7"
SIDE_FILES = ("gatehold.db-wal", "gatehold.db-shm")


class Client(Protocol):
    """``TestClient`` and ``aiohttp.ClientSession(base_url)`` alike."""

    def get(self, path: str, *, headers: dict[str, str]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    request_id: str
    problem: dict[str, Any]
    """The problem JSON of a refusal (``{}`` otherwise)."""
    retry_after: str
    took: float


async def ask(client: Client, session: str) -> Answer:
    """GET alice's own invoice (``session`` is her session token)."""
    began = time.monotonic()
    headers = {"Cookie": f"__Host-gatehold={session}", "Accept": "application/json"}
    async with asyncio.timeout(ANSWER_BOUND):
        async with client.get(ALICE_OWN, headers=headers) as reply:
            body = await reply.json() if reply.content_type.endswith("json") else {}
            return Answer(
                reply.status,
                reply.headers["X-Request-Id"],
                body if reply.status >= 400 else {},
                reply.headers.get("Retry-After", ""),
                time.monotonic() - began,
            )


def assert_refused(answer: Answer, *problems: str) -> None:
    """A 503 problem answer of one of ``problems``, naming its request, with Retry-After."""
    assert answer.status == 503, answer
    assert answer.problem["type"] in [f"/.gatehold/problems/{p}" for p in problems], answer
    assert answer.problem["request_id"] == answer.request_id
    if answer.problem["type"].endswith("/audit-unavailable"):
        assert "nothing was passed on" in answer.problem["detail"], answer
    assert answer.retry_after.isdigit(), answer
    assert answer.took < ANSWER_BOUND, answer


async def request_rows(stack: Stack) -> dict[str, int]:
    """How many ``request`` rows each request id has."""
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT request_id, count(*) AS n FROM audit_log WHERE kind = 'request' "
                "GROUP BY request_id"
            )
        )
        return {row.request_id: int(row.n) for row in rows}


def report(fault: str, refused: list[Answer], recovered: Answer) -> None:
    """One line of figures for the README (``pytest -s`` shows it)."""
    kinds = sorted({a.problem["type"].rsplit("/", 1)[1] for a in refused})
    print(
        f"\n{fault}: refused {len(refused)} x {refused[0].status} {'/'.join(kinds)} "
        f"(slowest {max(a.took for a in refused):.2f}s), forwarded 0; "
        f"after: {recovered.status}, forwarded and audited once, no restart"
    )


async def assert_refused_then_recovered(stack: Stack, before: Answer, refused: list[str]) -> Answer:
    """Nothing of ``refused`` was forwarded; the next request is forwarded and audited;
    the answered one from ``before`` the fault keeps its record; the trail verifies."""
    hits = await stack.ledger_hits()
    assert not [rid for rid in refused if hits.get(rid)], "forwarded during the fault"
    answer = await ask(stack.client, stack.cookies["alice@acme.test"])
    assert answer.status == 200, "no recovery without a restart"
    recovered = answer.request_id
    assert (await stack.ledger_hits())[recovered] == 1
    rows = await request_rows(stack)
    assert rows.get(recovered) == 1, "the recovered request is not audited once"
    assert rows.get(before.request_id) == 1, "a record from before the fault was lost"
    assert all(n == 1 for n in rows.values()), "a record written twice"
    trail = await verify_trail(stack.settings)
    assert trail.problems == [], trail.problems
    return answer


async def test_a_store_locked_by_another_process_answers_503_then_recovers(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, store={"lock_timeout": LOCK_TIMEOUT}) as stack:
        alice = stack.cookies["alice@acme.test"]
        before = await ask(stack.client, alice)
        assert before.status == 200
        database = Path(str(stack.app[ENGINE].url.database))
        async with sqlite_locked(database):
            answers = await asyncio.gather(*(ask(stack.client, alice) for _ in range(5)))
            answers += [await ask(stack.client, alice)]  # and one on its own
        for answer in answers:
            assert_refused(answer, "audit-unavailable")
        refused = [answer.request_id for answer in answers]
        recovered = await assert_refused_then_recovered(stack, before, refused)
    report(
        f"SQLite locked by another process past lock_timeout={LOCK_TIMEOUT}s", answers, recovered
    )


async def test_a_postgres_chain_head_locked_by_another_session_answers_503_then_recovers(
    tmp_path: Path,
) -> None:
    """PostgreSQL: another session holds the audit chain head's row lock (a stuck
    transaction, a long manual query with ``FOR UPDATE``) past ``statement_timeout``."""
    name = await create_database("locked")
    try:
        dsn = database_dsn(name)
        store = {"dsn": dsn, "statement_timeout": LOCK_TIMEOUT}
        async with running_stack(tmp_path, store=store) as stack:
            alice = stack.cookies["alice@acme.test"]
            before = await ask(stack.client, alice)
            assert before.status == 200
            holder = await asyncpg.connect(dsn)
            try:
                async with holder.transaction():
                    await holder.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                    answers = await asyncio.gather(*(ask(stack.client, alice) for _ in range(5)))
                    answers += [await ask(stack.client, alice)]
            finally:
                await holder.close()
            for answer in answers:
                assert_refused(answer, "audit-unavailable")
            ids = [a.request_id for a in answers]
            recovered = await assert_refused_then_recovered(stack, before, ids)
    finally:
        await drop_database(name)
    report(
        f"PostgreSQL chain head locked past statement_timeout={LOCK_TIMEOUT}s", answers, recovered
    )


async def test_a_database_file_gone_answers_503_then_recovers_once_it_is_back(
    tmp_path: Path,
) -> None:
    """The store's files moved away and a folder put in their place (a volume swapped,
    an operator's ``mv``): the gateway's open connection would go on writing to the
    moved file, where no verify or backup looks, so it must refuse instead."""
    async with running_stack(tmp_path) as stack:
        alice = stack.cookies["alice@acme.test"]
        before = await ask(stack.client, alice)
        assert before.status == 200
        database = Path(str(stack.app[ENGINE].url.database))
        files = [p for p in (database, *map(database.with_name, SIDE_FILES)) if p.exists()]
        away = tmp_path / "away"
        away.mkdir()
        for file in files:
            file.rename(away / file.name)
        database.mkdir()  # nothing SQLite could open, nor create a new log in
        answers = [await ask(stack.client, alice) for _ in range(3)]
        for answer in answers:
            assert_refused(answer, "audit-unavailable", "store-unavailable")
        database.rmdir()
        for file in files:
            (away / file.name).rename(file)
        recovered = await assert_refused_then_recovered(
            stack, before, [a.request_id for a in answers]
        )
    report("SQLite database file moved away, a folder in its place", answers, recovered)


FULL_KIB = 4096
"""The size of the data folder's file system in the full-disk test."""
MAX_REQUESTS_TO_FULL = 400
"""Requests sent on a full file system until the store refuses (SQLite reuses the room
its WAL file already has, so the first few may still be written)."""


async def test_a_full_disk_answers_503_then_recovers_once_space_is_freed(tmp_path: Path) -> None:
    require_tools()
    async with ledger_server(tmp_path) as ledger_url, aiohttp.ClientSession() as http:
        config, port = serve_config(tmp_path, ledger_url=ledger_url)
        sessions = await people_with_sessions(config)
        data, seed = tmp_path / "data", tmp_path / "seed"
        data.rename(seed)  # the store as prepared, copied onto the small file system
        data.mkdir()
        gateway = ServedGroup(config, port, tmp_path / "serve.log")
        small = on_small_tmpfs(gateway.command(), folder=data, seed=seed, size_kib=FULL_KIB)
        await asyncio.to_thread(gateway.start, argv=small)
        try:
            assert gateway.process is not None
            pid = gateway.process.pid
            there = inside(pid, data)
            client = aiohttp.ClientSession(f"http://127.0.0.1:{port}")
            async with client:
                alice = sessions["alice@acme.test"]
                assert (await ask(client, alice)).status == 200
                filled = await asyncio.to_thread(fill, there)
                answers = []
                for _ in range(MAX_REQUESTS_TO_FULL):
                    answers.append(await ask(client, alice))
                    if len([a for a in answers if a.status == 503]) >= 3:
                        break
                refused = [a for a in answers if a.status != 200]
                for answer in refused:
                    assert_refused(answer, "audit-unavailable", "store-unavailable")
                assert len(refused) >= 3, f"still writing with {filled} bytes of filler"
                async with http.get(f"{ledger_url}/__ledger/hits") as reply:
                    hits = await reply.json()
                assert not [a for a in refused if hits.get(a.request_id)], "forwarded"
                (there / "filler").unlink()
                recovered = await ask(client, alice)
                assert recovered.status == 200, "no recovery without a restart"
            async with http.get(f"{ledger_url}/__ledger/hits") as reply:
                hits = await reply.json()
            assert hits.get(recovered.request_id) == 1
            await asyncio.sleep(0.3)  # the outcome is committed after the answer
            # SQLite resolves /proc/<pid>/root to /, so the store is read from inside.
            verified = await asyncio.to_thread(
                run_inside, pid, "-m", "gateway", "audit", "verify", "--config", str(config)
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            counted = run_inside(pid, "-c", COUNT_REQUEST_ROWS, str(data / "gatehold.db"))
            rows: dict[str, int] = json.loads(counted.stdout)
        finally:
            await asyncio.to_thread(gateway.stop)
    assert rows.get(recovered.request_id) == 1, "the recovered request is not audited once"
    assert all(n == 1 for n in rows.values()), "a record written twice"
    allowed = [a for a in answers if a.status == 200]
    assert all(rows.get(a.request_id) == 1 for a in allowed), "an answered request unaudited"
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines()]
    assert not [line for line in lines if line.get("status") == 500]
    errors = [line["message"] for line in lines if line["level"] == "error"]
    assert len(errors) == 1 and "database or disk is full" in errors[0], errors
    print(
        f"\nfull: {FULL_KIB} KiB tmpfs, filler {filled} bytes; answered 200 on the full disk "
        f"{len(answers) - len(refused)}, refused {len(refused)} "
        f"({sorted({a.problem['type'] for a in refused})}); after the filler was deleted: "
        f"{recovered.status}, forwarded {hits.get(recovered.request_id)}x, audited "
        f"{rows.get(recovered.request_id)}x; audit verify exit {verified.returncode}"
    )


COUNT_REQUEST_ROWS = """
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("SELECT request_id, count(*) FROM audit_log WHERE kind = 'request' "
                  "GROUP BY request_id").fetchall()
print(json.dumps(dict(rows)))
"""


def run_inside(pid: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the mount namespace of process ``pid`` (``docker exec``)."""
    return subprocess.run(
        ["nsenter", "--mount", f"--target={pid}", "--", sys.executable, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
