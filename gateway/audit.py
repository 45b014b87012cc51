"""Audit before forward (I5): a group-commit writer over the store's hash chain.

``AuditWriter.begin`` queues an entry and returns once the transaction holding it has
committed durably. One writer task takes everything pending (up to ``max_batch``) into
ONE transaction; while that commits, new entries gather for the next one — so a busy
gateway pays one fsync per batch, not per request, and nobody waits on a timer. When a
commit fails, every ``begin`` in that batch raises ``StoreUnavailable``: the caller
answers 503 and forwards nothing.

``record`` and ``finish`` queue entries without waiting (outcomes, events after the fact);
their failures are logged and counted, never raised into a request. When only such
entries are queued, the writer lingers up to ``linger`` seconds for a ``begin`` to share
their transaction: otherwise a request arriving just after the previous one's outcome
would wait for two commits (the outcome's, then its own) instead of one.

The chain is keyed (``gateway.audit_keys``). After a commit the writer appends a signed
checkpoint of the head it wrote (``gateway.audit_checkpoints``) once ``checkpoint_every``
seconds have passed since the last one, or when it falls idle or closes, so cutting
records off the end of the log shows within about that time. Every committed record
also goes to the JSON-lines sink when one is configured. ``writer_for`` builds the one
writer a process uses, server or CLI, from the settings, so both write the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit_checkpoints import CheckpointWriter
from gateway.audit_keys import AuditKey, audit_key
from gateway.config.settings import Settings
from gateway.errors import StoreUnavailable
from gateway.logs import note_audited
from gateway.model import (
    GLOBAL_TENANT,
    Admitted,
    Anonymous,
    AuditEntry,
    AuditReceipt,
    AuthMethod,
    Decision,
    MatchResult,
    MethodNotAllowed,
    NotFound,
    Outcome,
    Owned,
    OwnerAnswer,
    Principal,
    Rejection,
    ResolverFailed,
    RouteMatch,
)
from gateway.store import audit_log
from gateway.store.audit_log import AuditRow, canonical_json
from gateway.store.audit_sqlite import SqliteAuditAppender
from gateway.store.engine import DEFAULT_LOCK_TIMEOUT, writing

log = logging.getLogger(__name__)

ENTRY_COLUMNS = ("route", "decision", "reason", "method", "path")
"""``event_entry`` keywords that fill a column of their own rather than ``data``."""
MAX_USER_AGENT = 512
MAX_QUERY = 8192
"""The whole query up to 8 KiB (the ingress refuses longer targets); past that, a prefix
plus its length and SHA-256, flagged ``query_truncated``: a record never shortens a value
without saying so."""
API_KEY_USER_PREFIX = "apikey:"
"""How an API key principal's ``user_id`` starts (``auth.api_clients.key_principal``)."""
MAX_AUDITED_OBJECTS = 20
"""Objects listed one by one in a request's record; ``object_count`` gives them all."""


@dataclass(slots=True)
class _Pending:
    entry: AuditEntry
    data_json: str
    """``entry.data`` serialised when queued: later changes to the entry are not recorded."""
    waiter: asyncio.Future[AuditReceipt] | None
    """Set for ``begin`` (someone awaits the commit); ``None`` for ``record``."""


class AuditWriter:
    """Group-commit writer of the audit hash chain (one per process)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        key: AuditKey,
        max_batch: int = 1024,
        clock: Callable[[], float] = time.time,
        jsonl_path: Path | str | None = None,
        linger: float = 0.002,
        checkpoints: CheckpointWriter | None = None,
        checkpoint_every: float = 1.0,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._key = key
        self._appender = _sqlite_appender(engine, key, lock_timeout)
        self._checkpoints = checkpoints
        self._checkpoint_every = checkpoint_every
        self._head: tuple[int, str] | None = None
        """The last (seq, hash) this writer committed."""
        self._checkpointed_seq = 0
        self._last_checkpoint = -math.inf
        self._checkpoint_failures = 0
        self._checkpoint_file_made = False
        self._thread: ThreadPoolExecutor | None = None
        self._max_batch = max_batch
        self._clock = clock
        self._sink = Path(jsonl_path) if jsonl_path is not None else None
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._linger = linger
        self._waiters_queued = 0
        """Queued entries someone awaits (``begin``); the rest are after-the-fact records."""
        self._waiter_arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._batches = 0
        self._entries = 0
        self._last_batch = 0
        self._failures = 0
        self._failing = 0
        """Transactions failed in a row: an outage is logged once, when it starts and ends."""
        self._dropped = 0
        self._sink_failures = 0
        self._queued_total = 0
        self._settled_total = 0
        self._batch_settled = asyncio.Event()

    # ------------------------------------------------------------------ counters

    @property
    def batches_committed(self) -> int:
        """Transactions committed so far."""
        return self._batches

    @property
    def entries_committed(self) -> int:
        """Entries committed so far."""
        return self._entries

    @property
    def last_batch_size(self) -> int:
        """Entries in the most recent committed transaction."""
        return self._last_batch

    @property
    def failures(self) -> int:
        """Transactions that failed (each failed every entry in it)."""
        return self._failures

    @property
    def records_dropped(self) -> int:
        """``record``/``finish`` entries lost to a failed commit or a closed writer."""
        return self._dropped

    @property
    def sink_failures(self) -> int:
        """Batches the JSON-lines sink could not append (the store still has them)."""
        return self._sink_failures

    @property
    def checkpoint_failures(self) -> int:
        """Checkpoints that could not be written (retried with the next batch)."""
        return self._checkpoint_failures

    @property
    def pending(self) -> int:
        """Entries queued for the next transaction."""
        return len(self._pending)

    async def settled(self) -> None:
        """Return once every entry queued before this call is committed or has failed.

        For the CLI and tests, which read the store right after recording: ``pending``
        alone reads 0 while a taken batch is still committing.
        """
        target = self._queued_total
        while self._settled_total < target and self._task is not None and not self._task.done():
            self._batch_settled.clear()
            await self._batch_settled.wait()

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="gatehold-audit-writer")

    async def close(self) -> None:
        """Commit everything queued, then stop. ``begin`` refuses new entries from now on."""
        self._closing = True
        self._wake.set()
        self._waiter_arrived.set()
        if self._task is None:
            await self._drain()
            await self._checkpoint(due_only=False)
        else:
            await self._task
        if self._checkpoints is not None:
            self._checkpoints.close()
        if self._thread is not None:
            self._thread.submit(self._appender.close if self._appender else lambda: None)
            self._thread.shutdown(wait=True)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    # ------------------------------------------------------------------ entries

    async def begin(self, entry: AuditEntry) -> AuditReceipt:
        """Queue ``entry`` and return once it is durably committed (I5).

        Raises ``StoreUnavailable`` if the commit fails or the writer is not running.
        """
        if not self.running:
            raise StoreUnavailable("the audit writer is not running")
        note_audited(entry)
        data_json = canonical_json(entry.data)
        waiter: asyncio.Future[AuditReceipt] = asyncio.get_running_loop().create_future()
        self._waiters_queued += 1
        self._enqueue(_Pending(entry, data_json, waiter))
        self._waiter_arrived.set()
        return await waiter

    def record(self, entry: AuditEntry) -> None:
        """Queue ``entry`` without waiting; failures are logged and counted, never raised."""
        note_audited(entry)
        if self._closing and (self._task is None or self._task.done()):
            self._drop([entry], "the audit writer is closed")
            return
        try:
            data_json = canonical_json(entry.data)
        except ValueError as exc:  # a circular structure: refuse it alone, not its batch
            self._drop([entry], str(exc))
            return
        self._enqueue(_Pending(entry, data_json, None))

    def finish(self, receipt: AuditReceipt, outcome: Outcome, *, reason: str = "") -> None:
        """Record what happened to a request after its entry was committed.

        ``reason`` is the refusal's code when the request was refused after its entry
        (body too slow or too large, upstream down…). On a guarded route the row also
        says what the response guard found and did (``guard``).
        """
        self.record(
            AuditEntry(
                kind="outcome",
                request_id=receipt.request_id,
                reason=reason,
                data={
                    "status": outcome.status,
                    "bytes": outcome.bytes_sent,
                    "duration_ms": round(outcome.duration_ms, 3),
                    "ref_seq": receipt.seq,
                }
                | ({"client_gone": True} if outcome.client_gone else {})
                | guard_data(outcome),
            )
        )

    def _enqueue(self, pending: _Pending) -> None:
        self._queued_total += 1
        self._pending.append(pending)
        self._wake.set()

    # ------------------------------------------------------------------ writer task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    await self._checkpoint(due_only=False)
                    return
                self._wake.clear()
                await self._idle()
                continue
            if not self._waiters_queued and not self._closing and self._linger > 0:
                await self._wait_for_a_waiter()
            await self._commit(self._take_batch())

    async def _idle(self) -> None:
        """Wait for entries; if a checkpoint is owed, write it when due (or now, if idle)."""
        if not self._checkpoint_owed():
            await self._wake.wait()
            return
        wait = self._last_checkpoint + self._checkpoint_every - time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wait, 0.0)):
                await self._wake.wait()
        await self._checkpoint(due_only=True)

    def _checkpoint_owed(self) -> bool:
        return (
            self._checkpoints is not None
            and self._head is not None
            and self._head[0] != self._checkpointed_seq
        )

    async def _checkpoint(self, *, due_only: bool) -> None:
        """Write a checkpoint of this writer's head, if one is owed (and due)."""
        if not self._checkpoint_owed() or self._checkpoints is None or self._head is None:
            return
        now = time.monotonic()
        if due_only and now - self._last_checkpoint < self._checkpoint_every:
            return
        seq, head_hash = self._head
        write = functools.partial(
            self._checkpoints.write, seq=seq, head_hash=head_hash, ts=self._clock()
        )
        self._last_checkpoint = now
        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            self._checkpoint_failures += 1
            log.error("audit checkpoint to %s failed: %s", self._checkpoints.path, exc)
            return
        self._checkpointed_seq = seq

    async def _make_checkpoint_file(self) -> None:
        """Once, before the first commit: the checkpoint file exists from then on, so a
        crash before the first checkpoint does not look like a deleted file."""
        self._checkpoint_file_made = True
        if self._checkpoints is None:
            return
        try:
            await asyncio.to_thread(self._checkpoints.create)
        except OSError as exc:
            self._checkpoint_failures += 1
            log.error("audit checkpoint file %s: %s", self._checkpoints.path, exc)

    async def _wait_for_a_waiter(self) -> None:
        """Give a ``begin`` up to ``linger`` seconds to join a batch of records."""
        self._waiter_arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._linger):
                await self._waiter_arrived.wait()

    async def _drain(self) -> None:
        while self._pending:
            await self._commit(self._take_batch())

    def _take_batch(self) -> list[_Pending]:
        count = min(self._max_batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(count)]
        self._waiters_queued -= sum(1 for pending in batch if pending.waiter is not None)
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            await self._commit_batch(batch)
        finally:
            self._settled_total += len(batch)
            self._batch_settled.set()

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        if not self._checkpoint_file_made:
            await self._make_checkpoint_file()
        try:
            rows = await self._append([p.entry for p in batch], [p.data_json for p in batch])
        except BaseException as exc:
            self._fail(batch, exc)
            self._refuse_queued_waiters()
            if not isinstance(exc, Exception):
                raise
            return
        if self._failing:
            log.warning("audit commits succeed again after %d failed transactions", self._failing)
            self._failing = 0
        self._batches += 1
        self._entries += len(rows)
        self._last_batch = len(rows)
        for pending, row in zip(batch, rows, strict=True):
            if pending.waiter is not None and not pending.waiter.done():
                pending.waiter.set_result(AuditReceipt(row.seq, pending.entry.request_id))
        if self._sink is not None:
            await self._append_to_sink(self._sink, rows)
        if rows:
            self._head = (rows[-1].seq, rows[-1].hash)
            await self._checkpoint(due_only=True)

    async def _append(self, entries: list[AuditEntry], texts: list[str]) -> list[AuditRow]:
        """One durable transaction for the batch: on SQLite one hop to the audit thread."""
        ts = self._clock()
        if self._appender is None:
            async with writing(self._engine) as conn:
                return await audit_log.insert_batch(
                    conn, entries, ts=ts, key=self._key.chain, data_json=texts
                )
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="gatehold-audit")
        append = functools.partial(self._appender.append, entries, ts=ts, data_json=texts)
        return await asyncio.get_running_loop().run_in_executor(self._thread, append)

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        """Fail every entry of ``batch``; nothing in it is retried.

        A commit whose outcome is unknown (the connection dropped during ``COMMIT``) may
        have written the batch: its waiters are still refused, so at worst a request is
        recorded that was never forwarded, never the reverse (I5). The next batch reads
        the chain head under its lock again, so a retry never forks the chain.

        While the store is down every batch fails: only the first failure of a run is
        an error (with its traceback); the rest are counted (``failures``) and logged
        at debug level, and the first success after them is a warning.
        """
        self._failures += 1
        self._failing += 1
        if self._failing == 1:
            log.error("audit commit of %d entries failed: %s", len(batch), exc, exc_info=exc)
        else:
            log.debug("audit commit of %d entries failed: %s", len(batch), exc)
        message = str(exc) if isinstance(exc, StoreUnavailable) else f"audit commit failed: {exc!r}"
        lost = [p.entry for p in batch if p.waiter is None]
        self._dropped += len(lost)
        for pending in batch:
            if pending.waiter is not None and not pending.waiter.done():
                pending.waiter.set_exception(StoreUnavailable(message))

    def _refuse_queued_waiters(self) -> None:
        """Refuse every ``begin`` queued while a transaction was failing.

        They arrived while the store could not commit (locked by another process past
        the lock timeout, a full disk, a server gone): trying them in the next
        transaction would make each wait out a whole timeout of its own behind the one
        that just failed, so a burst of requests would wait a multiple of it. Refused
        now, no request waits longer than one failed attempt; the next ``begin`` tries
        the store again. After-the-fact records stay queued for the next transaction.
        """
        waiting = [p for p in self._pending if p.waiter is not None]
        if not waiting:
            return
        self._pending = deque(p for p in self._pending if p.waiter is None)
        self._waiters_queued -= len(waiting)
        self._settled_total += len(waiting)
        for pending in waiting:
            if pending.waiter is not None and not pending.waiter.done():
                pending.waiter.set_exception(
                    StoreUnavailable("the audit store failed while this entry waited")
                )
        self._batch_settled.set()

    def _drop(self, entries: Sequence[AuditEntry], why: str) -> None:
        self._dropped += len(entries)
        for entry in entries:
            log.error("audit entry %s/%s dropped: %s", entry.kind, entry.request_id, why)

    async def _append_to_sink(self, path: Path, rows: list[AuditRow]) -> None:
        text = "".join(json.dumps(row.record(), ensure_ascii=False) + "\n" for row in rows)
        try:
            await asyncio.to_thread(_append, path, text)
        except OSError as exc:
            self._sink_failures += 1
            log.error("audit sink %s: append failed: %s", path, exc)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as sink:
        sink.write(text)


# ---------------------------------------------------------------------- entries


def request_entry(
    *,
    admitted: Admitted,
    method: str,
    user_agent: str,
    principal: Principal | Anonymous | Rejection,
    match: MatchResult,
    decision: Decision,
    upstream: str,
) -> AuditEntry:
    """The SPEC §6 record of one request, written before anything is forwarded."""
    route = match.route if isinstance(match, RouteMatch) else None
    resource = decision.resource
    caller = principal if isinstance(principal, Principal) else None
    data: dict[str, Any] = {
        "roles": _roles(caller, decision.tenant),
        "granted_by": list(decision.roles),
        "auth_method": caller.auth_method.value if caller else "none",
        "session": caller.session_hash if caller else None,
        "client": admitted.client_ip,
        "scheme": admitted.scheme,
        **_bounded("user_agent", user_agent, MAX_USER_AGENT),
        **_bounded("query", admitted.target.query, MAX_QUERY),
        "action": decision.action,
        "resource_type": resource.type if resource else None,
        "resource_id": resource.id if resource else None,
        "objects": [
            _object(r.ref.type, r.ref.id, r.ref.source, r.answer)
            for r in decision.objects[:MAX_AUDITED_OBJECTS]
        ],
        "object_count": len(decision.objects),
        "upstream": upstream,
        "sensitive": bool(route and route.sensitive),
        "explain": list(decision.explain),
    }
    if caller is not None:
        # Who to replay the request as (``rules impact``): the active tenant, and which
        # key when an API key called (the actor is then only its label).
        data["active_tenant"] = caller.active_tenant
        if caller.auth_method is AuthMethod.API_KEY:
            data["api_key"] = _key_id(caller.user_id)
    if isinstance(principal, Rejection):
        data["identity"] = principal.reason.value
    if isinstance(match, MethodNotAllowed):
        data["allowed_methods"] = sorted(match.allowed)
    return AuditEntry(
        kind="request",
        request_id=admitted.request_id,
        actor=caller.email if caller else "anonymous",
        tenant=decision.tenant or "",
        route=route.name if route else "",
        decision="allow" if decision.allowed else "deny",
        reason=decision.reason.value,
        method=method,
        path=admitted.target.path,
        data=data,
    )


def _key_id(user_id: str) -> int | None:
    """The key id of an API key principal's ``apikey:<id>`` user id."""
    number = user_id.removeprefix(API_KEY_USER_PREFIX)
    return int(number) if number.isdigit() else None


def _bounded(name: str, value: str, limit: int) -> dict[str, Any]:
    """``{name: value}``; if longer than ``limit``, its prefix, flagged, with a digest.

    ``<name>_truncated``, ``<name>_length`` and ``<name>_sha256`` (of the whole value's
    UTF-8) then say that and what was cut, so the record can still be matched to it.
    """
    if len(value) <= limit:
        return {name: value}
    whole = value.encode("utf-8", "backslashreplace")
    return {
        name: value[:limit],
        f"{name}_truncated": True,
        f"{name}_length": len(value),
        f"{name}_sha256": hashlib.sha256(whole).hexdigest(),
    }


def _roles(caller: Principal | None, tenant: str | None) -> list[str]:
    if caller is None:
        return []
    held = caller.roles_in(tenant) if tenant and tenant != GLOBAL_TENANT else ()
    return sorted(set(held) | set(caller.global_roles()))


def _object(kind: str, object_id: str, source: str, answer: OwnerAnswer) -> dict[str, str]:
    return {"type": kind, "id": object_id, "source": source, "owner": _owner(answer)}


def _owner(answer: OwnerAnswer) -> str:
    match answer:
        case Owned(tenant=tenant):
            return tenant
        case NotFound():
            return "(not found)"
        case ResolverFailed(detail=detail):
            return f"(resolver failed: {detail})"


def guard_data(outcome: Outcome) -> dict[str, Any]:
    """``{"guard": ...}`` for an outcome the response guard looked at, else nothing."""
    return {} if outcome.guard is None else {"guard": outcome.guard.as_data()}


def event_entry(
    kind: str, *, actor: str, tenant: str = "", request_id: str = "", **data: Any
) -> AuditEntry:
    """An event besides requests (``login``, ``session-minted``, ``user-added``…).

    ``route``, ``decision``, ``reason``, ``method`` and ``path`` keywords fill their own
    columns (so the audit filters find them); every other keyword goes into ``data``.
    """
    columns = {name: str(data.pop(name)) for name in ENTRY_COLUMNS if name in data}
    return AuditEntry(
        kind=kind, request_id=request_id, actor=actor, tenant=tenant, data=data, **columns
    )


def _sqlite_appender(
    engine: AsyncEngine, key: AuditKey, lock_timeout: float
) -> SqliteAuditAppender | None:
    """The direct append path for a SQLite file; ``None`` for PostgreSQL or in-memory."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return SqliteAuditAppender(database, key=key.chain, lock_timeout=lock_timeout)


def writer_for(settings: Settings, engine: AsyncEngine) -> AuditWriter:
    """The audit writer of this process (server or CLI): keyed, checkpointed, every sink.

    Creates the key file on first use. Raises ``ConfigError`` if the key is unusable.
    """
    key = audit_key(settings, create=True)
    return AuditWriter(
        engine,
        key=key,
        max_batch=settings.audit.max_batch,
        jsonl_path=settings.audit_jsonl_path,
        checkpoints=CheckpointWriter(
            settings.audit_checkpoints_path, key, syslog=settings.audit.syslog
        ),
        checkpoint_every=settings.audit_checkpoint_every,
        lock_timeout=settings.store_lock_timeout,
    )
