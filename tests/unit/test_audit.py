"""Audit before forward (I5): group commit, the hash chain, tamper detection, export."""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry, request_entry
from gateway.audit_keys import AuditKey
from gateway.errors import StoreUnavailable
from gateway.model import (
    Admitted,
    AuditEntry,
    AuditReceipt,
    AuthMethod,
    Decision,
    IdSource,
    IdSpec,
    Membership,
    NoRoute,
    ObjectRef,
    Outcome,
    Owned,
    Principal,
    Reason,
    ResolvedRef,
    Route,
    RouteMatch,
    Target,
)
from gateway.store import audit_log
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.tables import GENESIS_HASH
from tests.support.store_backends import StoreUnderTest
from tests.support.waiting import until

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")


@pytest.fixture
async def writer(engine: AsyncEngine) -> AsyncIterator[AuditWriter]:
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    yield writer
    await writer.close()


def entry(n: int, **changes: str) -> AuditEntry:
    values = {
        "kind": "request",
        "request_id": f"req-{n}",
        "actor": "alice@acme.test",
        "tenant": "acme",
        "method": "GET",
        "path": f"/api/invoices/{n}",
    }
    values.update(changes)
    return AuditEntry(**values, data={"n": n})


async def rows(engine: AsyncEngine) -> list[audit_log.AuditRow]:
    return [row async for row in audit_log.iter_rows(engine)]


async def sql(engine: AsyncEngine, statement: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement))


# ---------------------------------------------------------------- group commit


async def test_300_concurrent_begins_commit_in_far_fewer_transactions(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    receipts = await asyncio.gather(*(writer.begin(entry(n)) for n in range(300)))

    assert writer.entries_committed == 300
    assert writer.batches_committed < 300 / 5
    assert sorted(r.seq for r in receipts) == list(range(1, 301))
    assert {r.request_id for r in receipts} == {f"req-{n}" for n in range(300)}
    assert await audit_log.verify_chain(engine, key=KEY.chain) == []


async def test_a_receipt_names_the_committed_row(engine: AsyncEngine, writer: AuditWriter) -> None:
    receipt = await writer.begin(entry(7))

    [row] = await rows(engine)
    assert receipt == AuditReceipt(seq=row.seq, request_id="req-7")
    assert (row.path, row.actor, json.loads(row.data)) == (
        "/api/invoices/7",
        "alice@acme.test",
        {"n": 7},
    )


async def test_two_writers_on_one_store_extend_a_single_chain(
    store_under_test: StoreUnderTest,
) -> None:
    """Two engines, as two processes have: on PostgreSQL the chain head's row lock makes
    them take turns (without it both would write the same seq)."""
    engines = [store_under_test.engine, store_under_test.open_engine()]
    writers = [AuditWriter(e, key=KEY, max_batch=16) for e in engines]
    for w in writers:
        await w.start()
    try:
        receipts = await asyncio.gather(*(writers[n % 2].begin(entry(n)) for n in range(200)))
    finally:
        for w in writers:
            await w.close()
        await engines[1].dispose()
    assert sorted(r.seq for r in receipts) == list(range(1, 201))
    assert await audit_log.verify_chain(engines[0], key=KEY.chain) == []


async def test_a_cancelled_waiter_leaves_the_writer_working(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    first = asyncio.ensure_future(writer.begin(entry(1)))
    await asyncio.sleep(0)
    first.cancel()
    receipt = await writer.begin(entry(2))

    assert receipt.request_id == "req-2"
    assert [row.request_id for row in await rows(engine)] == ["req-1", "req-2"]


# ---------------------------------------------------------------- failure (I5)


async def drop_audit_table(engine: AsyncEngine, tmp_path: Path) -> AsyncEngine:
    await sql(engine, "DROP TABLE audit_log")
    return engine


async def store_out_of_reach(engine: AsyncEngine, tmp_path: Path) -> AsyncEngine:
    """SQLite: a file in a folder that does not exist; PostgreSQL: a database that does not."""
    if engine.dialect.name == "sqlite":
        return open_engine(f"sqlite:///{tmp_path / 'gone' / 'gatehold.db'}")
    gone = engine.url.set(database=f"{engine.url.database}_gone")
    return open_engine(gone.render_as_string(hide_password=False))


@pytest.mark.parametrize(
    "break_store",
    [drop_audit_table, store_out_of_reach],
    ids=["when the audit table was dropped", "when the store is out of reach"],
)
async def test_begin_raises_store_unavailable(
    engine: AsyncEngine, tmp_path: Path, break_store: object
) -> None:
    assert callable(break_store)
    broken: AsyncEngine = await break_store(engine, tmp_path)
    writer = AuditWriter(broken, key=KEY)
    await writer.start()
    try:
        results = await asyncio.gather(
            *(writer.begin(entry(n)) for n in range(5)), return_exceptions=True
        )
    finally:
        await writer.close()
        if broken is not engine:
            await broken.dispose()
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert writer.failures >= 1
    assert writer.entries_committed == 0


async def test_the_writer_commits_again_once_the_store_is_back(tmp_path: Path) -> None:
    """SQLite only: the store comes back when its folder is made (PostgreSQL's outage
    and return are in the readiness tests, which stop and start a real server)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'later' / 'gatehold.db'}")
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    try:
        with pytest.raises(StoreUnavailable):
            await writer.begin(entry(1))
        (tmp_path / "later").mkdir()
        await migrate(engine)
        receipt = await writer.begin(entry(2))
    finally:
        await writer.close()
        await engine.dispose()
    assert receipt.seq == 1


async def test_an_outage_is_logged_when_it_starts_and_ends_not_per_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'later' / 'gatehold.db'}")
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    caplog.set_level(logging.DEBUG, logger="gateway.audit")
    try:
        for n in range(5):  # five requests, one after the other: five failed transactions
            with pytest.raises(StoreUnavailable):
                await writer.begin(entry(n))
        (tmp_path / "later").mkdir()
        await migrate(engine)
        await writer.begin(entry(5))
        await writer.begin(entry(6))
    finally:
        await writer.close()
        await engine.dispose()
    loud = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert [level for level, _ in loud] == ["ERROR", "WARNING"], loud
    assert loud[1][1] == "audit commits succeed again after 5 failed transactions"
    assert writer.failures == 5
    assert [r.levelname for r in caplog.records].count("DEBUG") == 4


async def test_begins_queued_while_a_commit_fails_fail_with_it_not_one_timeout_each(
    tmp_path: Path,
) -> None:
    """SQLite locked by another connection past the lock timeout: the first begin's
    transaction waits it out; begins queued meanwhile are refused when it fails, not
    tried one transaction (and one more timeout) after another."""
    database = tmp_path / "gatehold.db"
    engine = open_engine(f"sqlite:///{database}")
    await migrate(engine)
    writer = AuditWriter(engine, key=KEY, lock_timeout=2.0)
    await writer.start()
    locker = sqlite3.connect(database, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        first = asyncio.ensure_future(writer.begin(entry(0)))
        await asyncio.sleep(0)  # begin queues its entry at once
        # The writer takes it at once; its transaction then waits 2 s for the lock.
        await until(lambda: writer.pending == 0, "the writer takes the first entry")
        assert not first.done()
        later = [asyncio.ensure_future(writer.begin(entry(n))) for n in range(1, 5)]
        results = await asyncio.gather(first, *later, return_exceptions=True)
        locker.execute("ROLLBACK")
        receipt = await writer.begin(entry(5))
    finally:
        locker.close()
        await writer.close()
        await engine.dispose()
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert writer.failures == 1, "each queued begin waited out a lock timeout of its own"
    assert receipt.seq == 1


async def test_failed_records_are_counted_not_raised(tmp_path: Path) -> None:
    """On SQLite only: what is checked is the writer's accounting, the same on both."""
    engine = open_engine(f"sqlite:///{tmp_path / 'gone' / 'gatehold.db'}")
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    writer.record(entry(1))
    writer.record(entry(2))
    await writer.close()
    await engine.dispose()
    assert (writer.records_dropped, writer.entries_committed) == (2, 0)


async def test_begin_after_close_is_refused(engine: AsyncEngine) -> None:
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    await writer.close()
    with pytest.raises(StoreUnavailable):
        await writer.begin(entry(1))


# ---------------------------------------------------------------- record / finish / close


async def test_close_commits_every_queued_record(engine: AsyncEngine) -> None:
    writer = AuditWriter(engine, key=KEY, max_batch=8)
    await writer.start()
    for n in range(50):
        writer.record(entry(n))
    await writer.close()

    assert [row.request_id for row in await rows(engine)] == [f"req-{n}" for n in range(50)]
    assert writer.batches_committed >= 50 / 8


async def test_records_queued_before_start_are_committed(engine: AsyncEngine) -> None:
    writer = AuditWriter(engine, key=KEY)
    writer.record(entry(1))
    await writer.close()
    assert len(await rows(engine)) == 1


async def test_finish_records_the_outcome_against_the_request(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    receipt = await writer.begin(entry(1))
    writer.finish(receipt, Outcome(status=200, bytes_sent=512, duration_ms=12.34567))
    await writer.close()

    outcome = (await rows(engine))[-1]
    assert (outcome.kind, outcome.request_id) == ("outcome", "req-1")
    assert json.loads(outcome.data) == {
        "status": 200,
        "bytes": 512,
        "duration_ms": 12.346,
        "ref_seq": receipt.seq,
    }


async def test_committed_entries_are_also_appended_to_the_jsonl_sink(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sink = tmp_path / "audit.jsonl"
    writer = AuditWriter(engine, key=KEY, jsonl_path=sink)
    await writer.start()
    await asyncio.gather(*(writer.begin(entry(n)) for n in range(3)))
    await writer.close()

    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[0]["data"] == {"n": 0}
    assert lines[2]["hash"] == (await rows(engine))[2].hash


# ---------------------------------------------------------------- hash chain


async def test_each_hash_covers_the_previous_hash_and_every_other_column(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    await writer.begin(entry(1))
    await writer.begin(entry(2))
    first, second = await rows(engine)

    record = first.record() | {"data": first.data}
    del record["hash"]
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    assert first.prev_hash == GENESIS_HASH
    message = (GENESIS_HASH + canonical).encode()
    assert first.hash == hmac.new(KEY.chain, message, "sha256").hexdigest()
    assert second.prev_hash == first.hash


@pytest.mark.parametrize(
    "odd",
    ["plain", 'quote " and \\ backslash', "zoë ünïcode ☃ 𝄞", "\x01\n\t control", ""],
    ids=[
        "for plain text",
        "for quotes and backslashes",
        "for non-ASCII text",
        "for control characters",
        "for empty text",
    ],
)
def test_the_fast_record_hash_equals_hmac_of_canonical_json(odd: str) -> None:
    [row] = audit_log.chain(
        [entry(1, path=odd, actor=odd)],
        last_seq=41,
        last_hash="a" * 64,
        ts=1.1 + 2**40,
        key=KEY.chain,
    )
    values = row.values()
    del values["hash"]
    message = ("a" * 64 + audit_log.canonical_json(values)).encode()
    expected = hmac.new(KEY.chain, message, "sha256").hexdigest()
    assert audit_log.record_hash(row.values(), KEY.chain) == row.hash == expected


async def test_odd_text_is_stored_and_still_verifies(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    await writer.begin(entry(1, path="/ünï/\x00/\udcff", actor="zoë@acme.test"))
    [row] = await rows(engine)
    assert row.actor == "zoë@acme.test"
    assert "\x00" not in row.path
    assert await audit_log.verify_chain(engine, key=KEY.chain) == []


async def test_verify_finds_an_edited_row_and_a_deleted_row(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    for n in range(10):
        await writer.begin(entry(n))
    assert await audit_log.verify_chain(engine, key=KEY.chain) == []

    await sql(engine, "UPDATE audit_log SET path = '/api/invoices/999' WHERE seq = 3")
    await sql(engine, "DELETE FROM audit_log WHERE seq = 7")
    problems = await audit_log.verify_chain(engine, key=KEY.chain)

    assert len(problems) == 2, problems
    assert problems[0].startswith("seq 3: edited")
    assert problems[1].startswith("seq 7: deleted")


async def test_verify_finds_rows_deleted_from_the_end(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    for n in range(5):
        await writer.begin(entry(n))
    await sql(engine, "DELETE FROM audit_log WHERE seq >= 4")

    assert await audit_log.verify_chain(engine, key=KEY.chain) == [
        "seq 4-5: deleted (the chain head is at seq 5, the last record is seq 3)"
    ]


async def test_verify_finds_a_row_rehashed_after_editing(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    for n in range(3):
        await writer.begin(entry(n))
    [_, second, _] = await rows(engine)
    forged = audit_log.chain(
        [entry(1, path="/forged")],
        last_seq=1,
        last_hash=second.prev_hash,
        ts=second.ts,
        key=KEY.chain,  # an insider holding the key: the next row's link still breaks
    )[0]
    await sql(
        engine,
        f"UPDATE audit_log SET path = '/forged', hash = '{forged.hash}' WHERE seq = 2",  # noqa: S608
    )

    assert await audit_log.verify_chain(engine, key=KEY.chain) == [
        "seq 3: prev_hash does not match the hash of seq 2 (records replaced or reordered)"
    ]


async def test_an_empty_log_verifies(engine: AsyncEngine) -> None:
    assert await audit_log.verify_chain(engine, key=KEY.chain) == []


# ---------------------------------------------------------------- export


async def test_jsonl_export_round_trips(engine: AsyncEngine, writer: AuditWriter) -> None:
    for n in range(3):
        await writer.begin(entry(n, tenant="acme" if n else "globex"))
    stored = await rows(engine)

    text_ = "".join([c async for c in audit_log.export_rows(engine, fmt="jsonl")])
    assert [json.loads(line) for line in text_.splitlines()] == [r.record() for r in stored]


async def test_csv_export_round_trips(engine: AsyncEngine, writer: AuditWriter) -> None:
    for n in range(3):
        await writer.begin(entry(n))
    stored = await rows(engine)

    text_ = "".join([c async for c in audit_log.export_rows(engine, fmt="csv")])
    parsed = list(csv.DictReader(io.StringIO(text_)))
    assert parsed == [
        {k: str(v) for k, v in (r.record() | {"data": r.data}).items()} for r in stored
    ]


async def test_export_filters_by_tenant_and_neutralises_spreadsheet_formulas(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    await writer.begin(entry(1, tenant="acme", actor="=HYPERLINK(1)"))
    await writer.begin(entry(2, tenant="globex"))

    text_ = "".join(
        [
            c
            async for c in audit_log.export_rows(
                engine, fmt="csv", where=audit_log.AuditFilter(tenant="acme")
            )
        ]
    )
    [only] = list(csv.DictReader(io.StringIO(text_)))
    assert (only["request_id"], only["actor"]) == ("req-1", "'=HYPERLINK(1)")


async def test_an_unknown_export_format_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="xml"):
        async for _ in audit_log.export_rows(engine, fmt="xml"):
            pass


# ---------------------------------------------------------------- entries


INVOICE = Route(
    name="invoice-read",
    pattern="/api/invoices/{invoice_id:int}",
    methods=frozenset({"GET"}),
    upstream="ledger",
    ids=(IdSpec("invoice", IdSource.PATH, "invoice_id", "int"),),
)
ADMITTED = Admitted(Target("/api/invoices/7", "full=1"), "a" * 32, "203.0.113.9", "https")
ALICE = Principal(
    user_id="1",
    email="alice@acme.test",
    memberships=(
        Membership("acme", "standard"),
        Membership("globex", "admin"),
        Membership("*", "auditor"),
    ),
    auth_method=AuthMethod.SESSION,
    auth_time=0.0,
    session_hash="f" * 64,
)


def test_a_request_entry_holds_every_field_of_the_audit_record() -> None:
    ref = ObjectRef("invoice", "7", "path.invoice_id")
    decision = Decision(
        allowed=True,
        reason=Reason.ROLE_ALLOWED,
        action="read",
        tenant="acme",
        roles=("standard",),
        explain=("invoice 7 belongs to acme", "standard may read"),
        objects=(ResolvedRef(ref, Owned("acme")),),
    )
    made = request_entry(
        admitted=ADMITTED,
        method="GET",
        user_agent="curl/8",
        principal=ALICE,
        match=RouteMatch(INVOICE, {"invoice_id": "7"}),
        decision=decision,
        upstream="ledger",
    )
    assert (made.kind, made.request_id, made.actor, made.tenant, made.route) == (
        "request",
        "a" * 32,
        "alice@acme.test",
        "acme",
        "invoice-read",
    )
    assert (made.decision, made.reason, made.method, made.path) == (
        "allow",
        "role-allowed",
        "GET",
        "/api/invoices/7",
    )
    assert made.data | {"objects": None} == {
        "roles": ["auditor", "standard"],
        "granted_by": ["standard"],
        "auth_method": "session",
        "session": "f" * 64,
        "client": "203.0.113.9",
        "scheme": "https",
        "user_agent": "curl/8",
        "query": "full=1",
        "action": "read",
        "resource_type": "invoice",
        "resource_id": "7",
        "objects": None,
        "object_count": 1,
        "upstream": "ledger",
        "sensitive": False,
        "explain": ["invoice 7 belongs to acme", "standard may read"],
        "active_tenant": None,
    }
    assert made.data["objects"] == [
        {"type": "invoice", "id": "7", "source": "path.invoice_id", "owner": "acme"}
    ]


def test_a_request_entry_names_the_api_key_and_active_tenant_to_replay_it_as() -> None:
    key = Principal(
        user_id="apikey:3",
        email="apikey:billing-sync",
        memberships=(Membership("acme", "standard"),),
        auth_method=AuthMethod.API_KEY,
        auth_time=0.0,
        active_tenant="acme",
    )
    made = request_entry(
        admitted=ADMITTED,
        method="GET",
        user_agent="sync/1",
        principal=key,
        match=RouteMatch(INVOICE, {"invoice_id": "7"}),
        decision=Decision(allowed=False, reason=Reason.ROLE_FORBIDDEN, tenant="acme"),
        upstream="ledger",
    )
    assert made.actor == "apikey:billing-sync"
    assert (made.data["api_key"], made.data["active_tenant"]) == (3, "acme")
    assert made.data["query"] == "full=1" and made.path == "/api/invoices/7"


def test_an_anonymous_request_without_a_route_is_recorded_as_denied() -> None:
    from gateway.model import ANONYMOUS

    made = request_entry(
        admitted=ADMITTED,
        method="GET",
        user_agent="",
        principal=ANONYMOUS,
        match=NoRoute(),
        decision=Decision(allowed=False, reason=Reason.ROUTE_NOT_FOUND),
        upstream="",
    )
    assert (made.actor, made.route, made.decision, made.reason) == (
        "anonymous",
        "",
        "deny",
        "route-not-found",
    )
    assert made.data["auth_method"] == "none"


def test_an_event_entry_lifts_column_keywords_out_of_data() -> None:
    made = event_entry(
        "rejected",
        actor="anonymous",
        request_id="r1",
        reason="target-ambiguous",
        method="GET",
        raw_target="/a/%2e%2e/b",
    )
    assert (made.kind, made.reason, made.method) == ("rejected", "target-ambiguous", "GET")
    assert made.data == {"raw_target": "/a/%2e%2e/b"}


async def test_settled_returns_once_everything_queued_before_it_is_committed(
    engine: AsyncEngine, writer: AuditWriter
) -> None:
    for n in range(50):
        writer.record(entry(n))
    await writer.settled()
    assert writer.pending == 0
    assert len(await rows(engine)) == 50, "settled returned before the records were committed"
