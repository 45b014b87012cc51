"""Shadow runs: a rules version decided beside the active one, and where they differed.

``shadow_runs`` holds one row per run, in one of three states:

- *running* (no ``stopped_at``): every gateway process follows it and decides in shadow;
- *draining* (``stopped_at`` set, no ``stopped_by``): an activation has ended the
  judging; processes stop deciding in shadow and write what they hold, which is still
  counted; the run then ends (``finish``) or runs again;
- *ended* (``stopped_by`` set): stopped or activated; a batch arriving later is not
  added to it, its differences are only counted in ``dropped`` (``record``).

At most one run is running or draining: starting, draining, stopping and finishing take
the rules lock, and on PostgreSQL notify ``gatehold_rules`` with the payload ``shadow``.
Differences are written in batches by each process (``gateway/shadow.py``): one
``shadow_groups`` row per (live version, routes, decisions, reasons) with a count, and
at most ``SAMPLES_PER_GROUP`` sample requests per group, so a hot differing endpoint
adds to a count instead of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import tables
from gateway.store.engine import dialect_insert, reading, writing
from gateway.store.notify import RULES, notify
from gateway.store.rule_versions import Activation, activate_within, lock_rules

SAMPLES_PER_GROUP = 5
"""Sample requests kept per difference group and run; the rest are only counted."""
SHADOW_PAYLOAD = "shadow"
"""The ``gatehold_rules`` payload of a shadow start or stop (an activation sends its id)."""


@dataclass(frozen=True, slots=True)
class ShadowRun:
    id: int
    version_id: int
    started_at: float
    started_by: str
    comment: str
    stopped_at: float | None
    stopped_by: str | None
    decided: int
    """Requests decided by both versions (every process's, as flushed so far)."""
    agreed: int
    unjudged: int
    """Requests the shadow could not judge without a lookup or a body read of its own."""
    dropped: int
    """Differences a process could not keep (its pending batch was full)."""

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def draining(self) -> bool:
        """Judging ended by an activation that waits for every process's last writes."""
        return self.stopped_at is not None and self.stopped_by is None

    @property
    def ended(self) -> bool:
        """Stopped or activated: later writes are only counted as dropped."""
        return self.stopped_by is not None


@dataclass(frozen=True, slots=True)
class GroupKey:
    """What makes two differences the same: versions, routes, decisions and reasons."""

    live_version: int
    live_route: str
    shadow_route: str
    live_decision: str
    live_reason: str
    shadow_decision: str
    shadow_reason: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One request where the versions differed."""

    at: float
    request_id: str
    method: str
    target: str
    principal: str
    tenant: str
    live_detail: str
    shadow_detail: str


@dataclass(slots=True)
class PendingGroup:
    """Differences of one group not yet written: a count and the first few samples."""

    count: int
    first_at: float
    last_at: float
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one process flushes for one run at once."""

    run_id: int
    decided: int
    agreed: int
    unjudged: int
    dropped: int
    groups: dict[GroupKey, PendingGroup]


@dataclass(frozen=True, slots=True)
class DifferenceGroup:
    key: GroupKey
    count: int
    first_at: float
    last_at: float
    samples: tuple[Sample, ...]


def _run(raw: Row[Any]) -> ShadowRun:
    return ShadowRun(
        id=int(raw.id),
        version_id=int(raw.version_id),
        started_at=float(raw.started_at),
        started_by=str(raw.started_by),
        comment=str(raw.comment),
        stopped_at=None if raw.stopped_at is None else float(raw.stopped_at),
        stopped_by=None if raw.stopped_by is None else str(raw.stopped_by),
        decided=int(raw.decided),
        agreed=int(raw.agreed),
        unjudged=int(raw.unjudged),
        dropped=int(raw.dropped),
    )


async def running(engine: AsyncEngine) -> ShadowRun | None:
    """The run every process follows; ``None`` when no version is in shadow."""
    async with reading(engine) as conn:
        return await _running(conn)


async def _running(conn: AsyncConnection) -> ShadowRun | None:
    return await _newest(conn, tables.shadow_runs.c.stopped_at.is_(None))


async def _newest(conn: AsyncConnection, where: ColumnElement[bool]) -> ShadowRun | None:
    runs = tables.shadow_runs
    query = select(runs).where(where).order_by(runs.c.id.desc()).limit(1)
    raw = (await conn.execute(query)).first()
    return None if raw is None else _run(raw)


async def get_run(engine: AsyncEngine, run_id: int) -> ShadowRun | None:
    async with reading(engine) as conn:
        raw = (
            await conn.execute(select(tables.shadow_runs).where(tables.shadow_runs.c.id == run_id))
        ).first()
    return None if raw is None else _run(raw)


async def latest(engine: AsyncEngine) -> ShadowRun | None:
    """The newest run, running or stopped (what a report reads after a stop)."""
    runs = tables.shadow_runs
    async with reading(engine) as conn:
        raw = (await conn.execute(select(runs).order_by(runs.c.id.desc()).limit(1))).first()
    return None if raw is None else _run(raw)


async def current(engine: AsyncEngine) -> ShadowRun | None:
    """The run that is running or draining (not ended); ``None`` when there is none."""
    async with reading(engine) as conn:
        return await _current(conn)


async def _current(conn: AsyncConnection) -> ShadowRun | None:
    return await _newest(conn, tables.shadow_runs.c.stopped_by.is_(None))


async def start(
    engine: AsyncEngine, version_id: int, *, by: str, comment: str, now: float
) -> tuple[ShadowRun, bool]:
    """Start running ``version_id`` in shadow: the new run and ``True``; or the run
    already running or draining and ``False`` (then nothing was written)."""
    async with writing(engine) as conn:
        await lock_rules(conn)
        found = await _current(conn)
        if found is not None:
            return found, False
        result = await conn.execute(
            tables.shadow_runs.insert()
            .values(version_id=version_id, started_at=now, started_by=by, comment=comment)
            .returning(*tables.shadow_runs.c)
        )
        await notify(conn, RULES, SHADOW_PAYLOAD)
        return _run(result.one()), True


async def stop(engine: AsyncEngine, *, by: str, now: float) -> ShadowRun | None:
    """End the running (or draining) shadow; ``None`` when there was none."""
    async with writing(engine) as conn:
        await lock_rules(conn)
        found = await _current(conn)
        if found is None:
            return None
        return await _set_state(conn, found.id, stopped_at=found.stopped_at or now, stopped_by=by)


async def drain(engine: AsyncEngine, *, now: float, run_id: int | None = None) -> ShadowRun | None:
    """End the judging of the running shadow, keeping the run open for the last writes
    of every process (``draining``): followers stop deciding in shadow and flush. A run
    draining already is returned as it is; ``None`` when no run is running or draining
    (or, given ``run_id``, when that run is not the one)."""
    async with writing(engine) as conn:
        await lock_rules(conn)
        found = await _current(conn)
        if found is None or (run_id is not None and found.id != run_id):
            return None
        if found.draining:
            return found
        return await _set_state(conn, found.id, stopped_at=now, stopped_by=None)


async def _set_state(
    conn: AsyncConnection, run_id: int, *, stopped_at: float | None, stopped_by: str | None
) -> ShadowRun:
    runs = tables.shadow_runs
    result = await conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(stopped_at=stopped_at, stopped_by=stopped_by)
        .returning(*runs.c)
    )
    await notify(conn, RULES, SHADOW_PAYLOAD)
    return _run(result.one())


class Outcome(StrEnum):
    """How ``finish`` left a draining run."""

    ACTIVATED = "activated"
    """Its version is active and the run ended, in one transaction."""
    REFUSED = "refused"
    """Its evidence was not accepted: the run runs again (judging restarts)."""
    NOT_DRAINING = "not-draining"
    """Another admin stopped, activated or restarted it meanwhile: nothing was written."""


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Outcome
    run: ShadowRun | None
    """The run as the decision read it (its counters final); ``None``: no such run."""
    groups: tuple[DifferenceGroup, ...] = ()
    activation: Activation | None = None


Accept = Callable[[ShadowRun, Sequence[DifferenceGroup]], bool]
"""Whether a run's final counters and differences allow activating its version."""


async def finish(
    engine: AsyncEngine, run_id: int, *, accept: Accept, by: str, now: float
) -> Finished:
    """Decide a draining run in one transaction: read its final counters and differences
    (the run's row locked, so no batch is added meanwhile), then activate its version and
    end the run if ``accept`` says so, else run it again. Two activations finishing at
    once take turns on the rules lock; the second finds the run no longer draining."""
    async with writing(engine) as conn:
        await lock_rules(conn)
        runs = tables.shadow_runs
        raw = (
            await conn.execute(select(runs).where(runs.c.id == run_id).with_for_update())
        ).first()
        run = None if raw is None else _run(raw)
        if run is None or not run.draining:
            return Finished(Outcome.NOT_DRAINING, run)
        groups = tuple(await _differences(conn, run_id))
        if not accept(run, groups):
            await _set_state(conn, run_id, stopped_at=None, stopped_by=None)
            return Finished(Outcome.REFUSED, run, groups)
        activation = await activate_within(conn, run.version_id, by=by, now=now)
        ended = await _set_state(conn, run_id, stopped_at=run.stopped_at, stopped_by=by)
        return Finished(Outcome.ACTIVATED, ended, groups, activation)


async def record(engine: AsyncEngine, batch: Batch) -> int:
    """Add one process's batch to its run: counters, group counts, capped samples.

    A batch for a run that has ended (stopped or activated) is late: only its
    differences are counted, in the run's ``dropped``, so a closed report never changes
    its decisions or groups but shows that something arrived after it closed. Returns
    how many differences were late (0 for a batch added in full).
    """
    runs = tables.shadow_runs
    async with writing(engine) as conn:
        added = await conn.execute(
            update(runs)
            .where(runs.c.id == batch.run_id, runs.c.stopped_by.is_(None))
            .values(
                decided=runs.c.decided + batch.decided,
                agreed=runs.c.agreed + batch.agreed,
                unjudged=runs.c.unjudged + batch.unjudged,
                dropped=runs.c.dropped + batch.dropped,
            )
        )
        if added.rowcount == 0:
            late = batch.dropped + sum(group.count for group in batch.groups.values())
            if late:
                await conn.execute(
                    update(runs)
                    .where(runs.c.id == batch.run_id)
                    .values(dropped=runs.c.dropped + late)
                )
            return late
        for key, pending in batch.groups.items():
            group_id = await _add_to_group(conn, batch.run_id, key, pending)
            await _add_samples(conn, group_id, pending.samples)
        return 0


async def _add_to_group(
    conn: AsyncConnection, run_id: int, key: GroupKey, pending: PendingGroup
) -> int:
    groups = tables.shadow_groups
    values = {
        "run_id": run_id,
        "live_version": key.live_version,
        "live_route": key.live_route,
        "shadow_route": key.shadow_route,
        "live_decision": key.live_decision,
        "live_reason": key.live_reason,
        "shadow_decision": key.shadow_decision,
        "shadow_reason": key.shadow_reason,
        "count": pending.count,
        "first_at": pending.first_at,
        "last_at": pending.last_at,
    }
    stmt = dialect_insert(conn, groups).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            "run_id",
            "live_version",
            "live_route",
            "shadow_route",
            "live_decision",
            "live_reason",
            "shadow_decision",
            "shadow_reason",
        ],
        set_={
            "count": groups.c["count"] + stmt.excluded["count"],
            "last_at": func.max(groups.c.last_at, stmt.excluded["last_at"])
            if conn.dialect.name == "sqlite"
            else func.greatest(groups.c.last_at, stmt.excluded["last_at"]),
        },
    ).returning(groups.c.id)
    return int((await conn.execute(stmt)).scalar_one())


async def _add_samples(conn: AsyncConnection, group_id: int, samples: Sequence[Sample]) -> None:
    if not samples:
        return
    kept = await conn.scalar(
        select(func.count()).where(tables.shadow_samples.c.group_id == group_id)
    )
    room = SAMPLES_PER_GROUP - int(kept or 0)
    if room <= 0:
        return
    await conn.execute(
        tables.shadow_samples.insert(),
        [
            {
                "group_id": group_id,
                "at": s.at,
                "request_id": s.request_id,
                "method": s.method,
                "target": s.target,
                "principal": s.principal,
                "tenant": s.tenant,
                "live_detail": s.live_detail,
                "shadow_detail": s.shadow_detail,
            }
            for s in samples[:room]
        ],
    )


async def differences(engine: AsyncEngine, run_id: int) -> list[DifferenceGroup]:
    """Every difference group of a run with its samples, the most frequent first."""
    async with reading(engine) as conn:
        return await _differences(conn, run_id)


async def _differences(conn: AsyncConnection, run_id: int) -> list[DifferenceGroup]:
    groups, samples = tables.shadow_groups, tables.shadow_samples
    rows = (
        await conn.execute(
            select(groups)
            .where(groups.c.run_id == run_id)
            .order_by(groups.c["count"].desc(), groups.c.id)
        )
    ).all()
    ids = [int(row.id) for row in rows]
    found: dict[int, list[Sample]] = {}
    if ids:
        for raw in await conn.execute(
            select(samples).where(samples.c.group_id.in_(ids)).order_by(samples.c.id)
        ):
            found.setdefault(int(raw.group_id), []).append(
                Sample(
                    at=float(raw.at),
                    request_id=str(raw.request_id),
                    method=str(raw.method),
                    target=str(raw.target),
                    principal=str(raw.principal),
                    tenant=str(raw.tenant),
                    live_detail=str(raw.live_detail),
                    shadow_detail=str(raw.shadow_detail),
                )
            )
    return [
        DifferenceGroup(
            key=GroupKey(
                live_version=int(row.live_version),
                live_route=str(row.live_route),
                shadow_route=str(row.shadow_route),
                live_decision=str(row.live_decision),
                live_reason=str(row.live_reason),
                shadow_decision=str(row.shadow_decision),
                shadow_reason=str(row.shadow_reason),
            ),
            count=int(row._mapping["count"]),
            first_at=float(row.first_at),
            last_at=float(row.last_at),
            samples=tuple(found.get(int(row.id), ())),
        )
        for row in rows
    ]
