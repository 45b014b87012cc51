"""The gateway's ownership registry: (resource type, object id) → owning tenant.

Every write also records what it changed in ``registry_changes`` and notifies
``gatehold_registry`` (payload: the JSON ``[type, id]``), both in its own transaction,
so every replica evicts the owner it cached: at once when it hears the notification,
within its poll of ``changes_after`` otherwise. A write of more than ``BULK`` objects
records one change per resource type (``id`` null: every object of the type).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing
from gateway.store.notify import REGISTRY, notify

CSV_COLUMNS = ("resource_type", "object_id", "tenant")
BULK = 100
"""More objects than this in one write are recorded as a change of their whole types."""
CHANGES_KEPT = 3600.0
"""Seconds a change stays readable by polling replicas (far beyond their look-back)."""
MAX_PAYLOAD = 7000
"""PostgreSQL refuses notification payloads of 8000 bytes or more."""

Changed = tuple[str, str | None]
"""(resource type, object id), or (resource type, ``None``) for every object of it."""


class CsvImportError(ValueError):
    """A registry CSV has problems; ``problems`` lists each one with its line number."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class OwnerRow:
    resource_type: str
    object_id: str
    tenant: str


async def get_owner(engine: AsyncEngine, resource_type: str, object_id: str) -> str | None:
    """The tenant that owns the object, or ``None`` if the registry does not know it."""
    r = tables.registry.c
    async with reading(engine) as conn:
        query = select(r.tenant).where(r.resource_type == resource_type, r.object_id == object_id)
        tenant = (await conn.execute(query)).scalar_one_or_none()
    return None if tenant is None else str(tenant)


@dataclass(frozen=True, slots=True)
class RegistryChange:
    seq: int
    resource_type: str
    object_id: str | None
    """``None``: every object of the type (a bulk write)."""
    changed_at: float


async def set_owner(
    engine: AsyncEngine, resource_type: str, object_id: str, tenant: str, *, replace: bool = True
) -> bool:
    """Record (or, with ``replace``, change) the owner of one object; ``True`` if written.

    ``replace=False`` keeps an existing owner (and returns ``False`` for it): use it when
    learning owners from upstream answers, so a create can never move someone else's
    object into the caller's tenant.
    """
    rows = [OwnerRow(resource_type, object_id, tenant)]
    return await set_owners(engine, rows, replace=replace) > 0


async def set_owners(engine: AsyncEngine, rows: Iterable[OwnerRow], *, replace: bool = True) -> int:
    """Record many owners in one transaction; returns how many were written."""
    now = time.time()
    changed: list[Changed] = []
    async with writing(engine) as conn:
        for row in rows:
            values = {
                "resource_type": row.resource_type,
                "object_id": row.object_id,
                "tenant": row.tenant,
                "created_at": now,
            }
            result = await conn.execute(
                upsert(
                    conn,
                    tables.registry,
                    ("resource_type", "object_id"),
                    values,
                    update=("tenant",) if replace else (),
                )
            )
            if result.rowcount:
                changed.append((row.resource_type, row.object_id))
        await _record(conn, changed, now)
    return len(changed)


async def remove_owner(engine: AsyncEngine, resource_type: str, object_id: str) -> bool:
    """Forget an object; ``False`` if it was not registered."""
    r = tables.registry.c
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.registry.delete().where(
                r.resource_type == resource_type, r.object_id == object_id
            )
        )
        if result.rowcount:
            await _record(conn, [(resource_type, object_id)], time.time())
    return result.rowcount > 0


async def _record(conn: AsyncConnection, changed: list[Changed], now: float) -> None:
    """Note ``changed`` for polling replicas, notify listening ones, sweep old changes."""
    if not changed:
        return
    if len(changed) > BULK:
        changed = [(kind, None) for kind in sorted({kind for kind, _ in changed})]
    c = tables.registry_changes.c
    await conn.execute(
        insert(tables.registry_changes),
        [{"resource_type": kind, "object_id": oid, "changed_at": now} for kind, oid in changed],
    )
    await conn.execute(tables.registry_changes.delete().where(c.changed_at < now - CHANGES_KEPT))
    for kind, oid in changed:
        await notify(conn, REGISTRY, change_payload(kind, oid))


def change_payload(resource_type: str, object_id: str | None) -> str:
    """The notification of one change; an id too long for a payload widens to its type."""
    payload = json.dumps([resource_type, object_id])
    return payload if len(payload) < MAX_PAYLOAD else json.dumps([resource_type[:1000], None])


def parse_payload(payload: str) -> Changed | None:
    """The change a notification names; ``None`` if it names none (read the changes)."""
    try:
        kind, oid = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if not isinstance(kind, str) or not (oid is None or isinstance(oid, str)):
        return None
    return kind, oid


async def last_change(engine: AsyncEngine) -> int:
    """The newest change's ``seq`` (0 without any): where a starting process begins."""
    c = tables.registry_changes.c
    async with reading(engine) as conn:
        newest = (await conn.execute(select(func.max(c.seq)))).scalar_one_or_none()
    return int(newest or 0)


async def changes_after(engine: AsyncEngine, seq: int) -> list[RegistryChange]:
    """The changes committed with a ``seq`` above ``seq``, in ``seq`` order."""
    c = tables.registry_changes.c
    query = select(tables.registry_changes).where(c.seq > seq).order_by(c.seq)
    async with reading(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [
        RegistryChange(int(r.seq), str(r.resource_type), r.object_id, float(r.changed_at))
        for r in rows
    ]


def parse_csv(lines: Iterable[str]) -> list[OwnerRow]:
    """Rows of a ``resource_type,object_id,tenant`` CSV (header required).

    Raises ``CsvImportError`` listing every bad line, so one pass shows all of them.
    """
    return [row for _, row in numbered_rows(lines)]


def numbered_rows(lines: Iterable[str]) -> list[tuple[int, OwnerRow]]:
    """``parse_csv``'s rows, each with its line number (for problems found later)."""
    reader = csv.reader(lines)
    try:
        return _numbered(reader)
    except csv.Error as error:  # an unclosed quote, a field past the csv module's limit
        raise CsvImportError([f"line {reader.line_num}: {error}"]) from None


def _numbered(reader: Any) -> list[tuple[int, OwnerRow]]:
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
        raise CsvImportError([f"line 1: the header must be {','.join(CSV_COLUMNS)}"])
    rows: list[tuple[int, OwnerRow]] = []
    problems: list[str] = []
    for fields in reader:
        if not fields:
            continue
        values = [f.strip() for f in fields]
        if len(values) != len(CSV_COLUMNS) or not all(values):
            problems.append(
                f"line {reader.line_num}: expected 3 non-empty fields "
                f"({','.join(CSV_COLUMNS)}), got {fields!r}"[:300]
            )
            continue
        rows.append((reader.line_num, OwnerRow(*values)))
    if problems:
        raise CsvImportError(problems)
    return rows


async def import_csv(engine: AsyncEngine, lines: Iterable[str]) -> int:
    """Import a registry CSV all or nothing; returns how many owners were written."""
    return await set_owners(engine, parse_csv(lines))
