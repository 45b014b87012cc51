"""The audit log: a keyed hash chain of records, written in batches, verified and exported.

Each row's ``hash`` is ``HMAC-SHA256(key, prev_hash + canonical JSON of every other
column)`` and ``prev_hash`` is the previous row's ``hash`` (64 zeros for seq 1). The key
lives outside the store (``gateway.audit_keys``), so someone who can write the database
but not read the key cannot re-hash an edited row, nor the rows after it. The single
``audit_head`` row holds the last (seq, hash); writers lock it, so several processes or
replicas extend one chain in turn. An edited row no longer matches its hash; a deleted
row leaves a gap in ``seq`` (or, at the end, a head that points past the last row).

Deleting the last rows *and* resetting the head leaves a consistent chain: only an
anchor outside the database can show it. ``verify_chain`` takes such anchors
(``Checkpoint``: seq and head hash, signed and written elsewhere by
``gateway.audit_checkpoints``) and reports a log that ends before a checkpoint, or whose
row at a checkpoint's seq carries another hash.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.model import AuditEntry
from gateway.store import tables
from gateway.store.engine import lock_audit_head, reading
from gateway.store.tables import GENESIS_HASH, HASHED_COLUMNS

EXPORT_FORMATS = ("jsonl", "csv")
_SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One committed audit record exactly as stored."""

    seq: int
    ts: float
    kind: str
    request_id: str
    actor: str
    tenant: str
    route: str
    decision: str
    reason: str
    method: str
    path: str
    data: str
    """The entry's ``data`` as canonical JSON text (what the hash covers)."""
    prev_hash: str
    hash: str

    def values(self) -> dict[str, Any]:
        """Every column as stored (``data`` as JSON text)."""
        return {name: getattr(self, name) for name in COLUMNS}

    def record(self) -> dict[str, Any]:
        """Every column, with ``data`` parsed back into an object."""
        values = self.values()
        values["data"] = json.loads(self.data)
        return values


COLUMNS = tuple(f.name for f in fields(AuditRow))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which rows to read; ``None`` means "any". Times are Unix seconds, ``until`` exclusive."""

    since: float | None = None
    until: float | None = None
    actor: str | None = None
    tenant: str | None = None
    route: str | None = None
    decision: str | None = None
    kind: str | None = None
    request_id: str | None = None
    tenants: frozenset[str] | None = None
    """Only rows of these tenants (what a tenant admin may read)."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only (so any string survives every driver).

    One encoder built once: ``json.dumps`` with these options builds a new one per call,
    which is a third of the time for a request's audit entry.
    """
    return _CANONICAL.encode(value)


def record_hash(values: Mapping[str, Any], key: bytes) -> str:
    """The hash a row must carry: HMAC-SHA256(key, prev_hash + canonical JSON of the rest).

    The JSON is ``canonical_json({column: value for every column but hash})``, assembled
    here directly (the hot path of every batch); a test pins it to ``canonical_json``.
    """
    content = _HASHED_TEMPLATE % tuple([_json_scalar(values[name]) for name in _SORTED_HASHED])
    message = (values["prev_hash"] + content).encode("ascii")
    return hmac.digest(key, message, "sha256").hex()


def unkeyed_record_hash(values: Mapping[str, Any]) -> str:
    """The hash of a row written before the chain was keyed: plain SHA-256."""
    content = _HASHED_TEMPLATE % tuple([_json_scalar(values[name]) for name in _SORTED_HASHED])
    return hashlib.sha256((values["prev_hash"] + content).encode("ascii")).hexdigest()


_SORTED_HASHED = tuple(sorted(HASHED_COLUMNS))
_HASHED_TEMPLATE = "{" + ",".join(f"{encode_basestring_ascii(n)}:%s" for n in _SORTED_HASHED) + "}"
"""``{"actor":%s,"data":%s,...}``: the JSON object of the hashed columns, values to fill."""


def _json_scalar(value: str | int | float) -> str:
    if type(value) is str:
        return encode_basestring_ascii(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(value)
    return str(int(value))


def _text(value: str) -> str:
    """A column value every backend accepts: no NUL, no lone surrogates."""
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def chain(
    entries: Sequence[AuditEntry],
    *,
    last_seq: int,
    last_hash: str,
    ts: float,
    key: bytes,
    data_json: Sequence[str] | None = None,
) -> list[AuditRow]:
    """Number and hash ``entries`` after the chain head with ``key`` (pure; no I/O).

    ``data_json`` may carry each entry's ``canonical_json(entry.data)`` if already made.
    """
    rows: list[AuditRow] = []
    seq, prev = last_seq, last_hash
    texts = data_json if data_json is not None else [canonical_json(e.data) for e in entries]
    for entry, data in zip(entries, texts, strict=True):
        seq += 1
        values: dict[str, Any] = {
            "seq": seq,
            "ts": ts,
            "kind": _text(entry.kind),
            "request_id": _text(entry.request_id),
            "actor": _text(entry.actor),
            "tenant": _text(entry.tenant),
            "route": _text(entry.route),
            "decision": _text(entry.decision),
            "reason": _text(entry.reason),
            "method": _text(entry.method),
            "path": _text(entry.path),
            "data": data,
            "prev_hash": prev,
        }
        prev = record_hash(values, key)
        rows.append(AuditRow(**values, hash=prev))
    return rows


async def insert_batch(
    conn: AsyncConnection,
    entries: Sequence[AuditEntry],
    *,
    ts: float,
    key: bytes,
    data_json: Sequence[str] | None = None,
) -> list[AuditRow]:
    """Append ``entries`` to the chain inside the caller's transaction.

    Locks the chain head first, so concurrent writers take turns; the rows are durable
    once the caller's transaction commits. Returns the rows as written (seq, hashes).
    """
    if not entries:
        return []
    last_seq, last_hash = await lock_audit_head(conn)
    rows = chain(
        entries, last_seq=last_seq, last_hash=last_hash, ts=ts, key=key, data_json=data_json
    )
    await conn.execute(tables.audit_log.insert(), [row.values() for row in rows])
    await conn.execute(
        update(tables.audit_head)
        .where(tables.audit_head.c.id == 1)
        .values(seq=rows[-1].seq, hash=rows[-1].hash)
    )
    return rows


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A record, kept outside the database, that the chain once reached ``seq``."""

    seq: int
    head_hash: str
    """The hash of row ``seq`` when the checkpoint was written."""
    ts: float
    origin: str = ""
    """Where the checkpoint was read (``file:line``), for the report."""


async def verify_chain(
    engine: AsyncEngine,
    *,
    key: bytes,
    checkpoints: Sequence[Checkpoint] = (),
    unkeyed_until: int = 0,
) -> list[str]:
    """Every break in the chain, one sentence each naming the seq numbers; ``[]`` = intact.

    Each row must carry the keyed hash of its content and link to the row before; the
    head must point at the last row; each checkpoint must name a row that still carries
    the hash it saw, and none may lie past the end (rows cut off with the head reset).
    Rows up to ``unkeyed_until`` are held to the plain SHA-256 of a log written before
    the chain was keyed (which anyone able to write the database could recompute).
    Streams the log in seq order inside one snapshot, so it runs beside live writers.
    """
    problems: list[str] = []
    anchors: dict[int, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        anchors.setdefault(checkpoint.seq, []).append(checkpoint)
    edited = _Run()
    expected_seq, prev_hash = 1, GENESIS_HASH
    async with reading(engine, snapshot=True) as conn:
        query = select(tables.audit_log).order_by(tables.audit_log.c.seq)
        result = await conn.stream(query.execution_options(yield_per=1000))
        async for raw in result:
            row = _audit_row(raw)
            links = _link_problems(row, expected_seq, prev_hash)
            if row.seq > unkeyed_until:
                intact = record_hash(row.values(), key) == row.hash
            else:
                intact = unkeyed_record_hash(row.values()) == row.hash
            if links or intact:
                problems.extend(edited.flush())
            problems.extend(links)
            if not intact:
                edited.add(row.seq)
            problems.extend(_anchor_problems(row, anchors.get(row.seq, ())))
            expected_seq, prev_hash = row.seq + 1, row.hash
        problems.extend(edited.flush())
        head = (await conn.execute(select(tables.audit_head))).first()
    problems.extend(_head_problems(head, expected_seq - 1, prev_hash))
    problems.extend(_truncation(checkpoints, expected_seq - 1))
    return problems


async def last_seq(engine: AsyncEngine) -> int:
    """The highest seq in the log (0 when it is empty)."""
    async with reading(engine) as conn:
        found = await conn.scalar(select(func.max(tables.audit_log.c.seq)))
    return int(found or 0)


class _Run:
    """Consecutive rows whose content does not match their keyed hash, reported as one."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last = 0

    def add(self, seq: int) -> None:
        if self.first is None:
            self.first = seq
        self.last = seq

    def flush(self) -> list[str]:
        if self.first is None:
            return []
        seqs = f"seq {self.first}" if self.first == self.last else f"seq {self.first}-{self.last}"
        self.first = None
        return [
            f"{seqs}: edited (content does not match its keyed hash: changed, or re-hashed "
            "without the audit key)"
        ]


def _link_problems(row: AuditRow, expected_seq: int, prev_hash: str) -> list[str]:
    if row.seq != expected_seq:
        return [_gap(expected_seq, row.seq - 1)]
    if row.prev_hash != prev_hash:
        return [
            f"seq {row.seq}: prev_hash does not match the hash of seq {row.seq - 1} "
            "(records replaced or reordered)"
        ]
    return []


def _anchor_problems(row: AuditRow, anchors: Sequence[Checkpoint]) -> list[str]:
    return [
        f"seq {row.seq}: replaced or re-hashed (its hash differs from the one the "
        f"checkpoint{_where_from(anchor)} recorded at {_utc(anchor.ts)})"
        for anchor in anchors
        if anchor.head_hash != row.hash
    ]


def _truncation(checkpoints: Sequence[Checkpoint], last_seq: int) -> list[str]:
    if not checkpoints:
        return []
    furthest = max(checkpoints, key=lambda checkpoint: checkpoint.seq)
    if furthest.seq <= last_seq:
        return []
    return [
        f"seq {last_seq + 1}-{furthest.seq}: truncated (the checkpoint"
        f"{_where_from(furthest)} recorded the chain at seq {furthest.seq} at "
        f"{_utc(furthest.ts)}; the log now ends at seq {last_seq})"
    ]


def _where_from(checkpoint: Checkpoint) -> str:
    return f" in {checkpoint.origin}" if checkpoint.origin else ""


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gap(first: int, last: int) -> str:
    missing = f"seq {first}" if first == last else f"seq {first}-{last}"
    return f"{missing}: deleted (missing between seq {first - 1} and seq {last + 1})"


def _head_problems(head: Row[Any] | None, last_seq: int, last_hash: str) -> list[str]:
    if head is None:
        return ["audit_head: missing (the chain head row was deleted)"]
    if head.seq > last_seq:
        return [
            f"seq {last_seq + 1}-{head.seq}: deleted (the chain head is at seq {head.seq}, "
            f"the last record is seq {last_seq})"
        ]
    if head.seq < last_seq:
        return [f"seq {head.seq + 1}-{last_seq}: appended outside the writer (head is behind)"]
    if head.hash != last_hash:
        return [f"seq {last_seq}: the chain head's hash does not match the last record"]
    return []


def _where(query: Select[Any], where: AuditFilter) -> Select[Any]:
    c = tables.audit_log.c
    if where.since is not None:
        query = query.where(c.ts >= where.since)
    if where.until is not None:
        query = query.where(c.ts < where.until)
    for name in ("actor", "tenant", "route", "decision", "kind", "request_id"):
        value = getattr(where, name)
        if value is not None:
            query = query.where(c[name] == value)
    if where.tenants is not None:
        query = query.where(c.tenant.in_(sorted(where.tenants)))
    return query


async def iter_rows(
    engine: AsyncEngine, where: AuditFilter | None = None
) -> AsyncIterator[AuditRow]:
    """Matching rows in seq order, streamed."""
    query = _where(select(tables.audit_log), where or AuditFilter())
    async with reading(engine, snapshot=True) as conn:
        result = await conn.stream(
            query.order_by(tables.audit_log.c.seq).execution_options(yield_per=1000)
        )
        async for raw in result:
            yield _audit_row(raw)


async def recent_rows(
    engine: AsyncEngine,
    where: AuditFilter | None = None,
    *,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditRow]:
    """Up to ``limit`` matching rows, newest first (pass the last seq to page on)."""
    query = _where(select(tables.audit_log), where or AuditFilter())
    if before_seq is not None:
        query = query.where(tables.audit_log.c.seq < before_seq)
    async with reading(engine) as conn:
        result = await conn.execute(query.order_by(tables.audit_log.c.seq.desc()).limit(limit))
        return [_audit_row(raw) for raw in result]


async def row_at(
    engine: AsyncEngine, seq: int, where: AuditFilter | None = None
) -> AuditRow | None:
    """Row ``seq`` if it matches ``where`` (a tenant admin's tenants), else ``None``."""
    query = _where(select(tables.audit_log), where or AuditFilter())
    async with reading(engine) as conn:
        found = (await conn.execute(query.where(tables.audit_log.c.seq == seq))).first()
    return None if found is None else _audit_row(found)


@dataclass(frozen=True, slots=True)
class HourlyCount:
    """How many rows of one kind and decision fell into one hour of a window."""

    hour: int
    """0 for the window's first hour."""
    kind: str
    decision: str
    count: int


async def hourly_counts(
    engine: AsyncEngine,
    *,
    kinds: Sequence[str],
    start: float,
    hours: int,
    tenants: frozenset[str] | None = None,
) -> list[HourlyCount]:
    """Rows of ``kinds`` per hour from ``start`` (Unix seconds) for ``hours`` hours, per
    kind and decision; hours without rows are absent.

    The hour is a ``CASE`` over the window's hour boundaries, which SQLite and
    PostgreSQL compute alike (``floor`` is not in every SQLite build, and a cast to an
    integer truncates on SQLite but rounds on PostgreSQL).
    """
    c = tables.audit_log.c
    hour = _hour_of(c.ts, start, hours).label("hour")
    query = _where(
        select(hour, c.kind, c.decision, func.count().label("n")),
        AuditFilter(since=start, until=start + hours * 3600, tenants=tenants),
    ).where(c.kind.in_(list(kinds)))
    query = query.group_by(hour, c.kind, c.decision)
    async with reading(engine) as conn:
        result = await conn.execute(query)
        return [HourlyCount(int(r.hour), r.kind, r.decision, int(r.n)) for r in result]


def _hour_of(ts: ColumnElement[float], start: float, hours: int) -> ColumnElement[int]:
    bounds = [(ts < start + (n + 1) * 3600, n) for n in range(hours - 1)]
    return case(*bounds, else_=hours - 1)


@dataclass(frozen=True, slots=True)
class ValueCount:
    """One value of a column and how many matching rows carry it (and were denied)."""

    value: str
    count: int
    denied: int


async def top_values(
    engine: AsyncEngine, column: str, where: AuditFilter, *, limit: int = 10
) -> list[ValueCount]:
    """The ``limit`` most frequent non-empty values of ``column`` among the rows
    ``where`` selects, most frequent first (ties by value)."""
    value = tables.audit_log.c[column]
    count = func.count().label("n")
    denied = func.sum(case((tables.audit_log.c.decision == "deny", 1), else_=0)).label("denied")
    query = _where(select(value.label("value"), count, denied), where).where(value != "")
    query = query.group_by(value).order_by(count.desc(), value).limit(limit)
    async with reading(engine) as conn:
        result = await conn.execute(query)
        return [ValueCount(r.value, int(r.n), int(r.denied or 0)) for r in result]


async def export_rows(
    engine: AsyncEngine, *, fmt: str = "jsonl", where: AuditFilter | None = None
) -> AsyncIterator[str]:
    """The rows ``where`` selects as JSON lines or CSV (with a header), one chunk per row.

    CSV cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``…) get
    a leading ``'``; JSON lines carry every value unchanged.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        yield _csv_line(COLUMNS)
    async for row in iter_rows(engine, where):
        if fmt == "jsonl":
            yield json.dumps(row.record(), ensure_ascii=False) + "\n"
        else:
            yield _csv_line([_cell(value) for value in row.values().values()])


def _cell(value: Any) -> str:
    text = str(value)
    return "'" + text if text.startswith(_SPREADSHEET_TRIGGERS) else text


def _csv_line(values: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _audit_row(raw: Row[Any]) -> AuditRow:
    m = raw._mapping
    return AuditRow(
        seq=int(m["seq"]),
        ts=float(m["ts"]),
        kind=m["kind"],
        request_id=m["request_id"],
        actor=m["actor"],
        tenant=m["tenant"],
        route=m["route"],
        decision=m["decision"],
        reason=m["reason"],
        method=m["method"],
        path=m["path"],
        data=m["data"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )
