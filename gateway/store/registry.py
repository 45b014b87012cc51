"""The gateway's ownership registry: (resource type, object id) → owning tenant."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing

CSV_COLUMNS = ("resource_type", "object_id", "tenant")


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


async def set_owner(
    engine: AsyncEngine, resource_type: str, object_id: str, tenant: str, *, replace: bool = True
) -> None:
    """Record (or, with ``replace``, change) the owner of one object.

    ``replace=False`` keeps an existing owner: use it when learning owners from upstream
    answers, so a create can never move someone else's object into the caller's tenant.
    """
    await set_owners(engine, [OwnerRow(resource_type, object_id, tenant)], replace=replace)


async def set_owners(engine: AsyncEngine, rows: Iterable[OwnerRow], *, replace: bool = True) -> int:
    """Record many owners in one transaction; returns how many rows were given."""
    now = time.time()
    count = 0
    async with writing(engine) as conn:
        for row in rows:
            values = {
                "resource_type": row.resource_type,
                "object_id": row.object_id,
                "tenant": row.tenant,
                "created_at": now,
            }
            await conn.execute(
                upsert(
                    conn,
                    tables.registry,
                    ("resource_type", "object_id"),
                    values,
                    update=("tenant",) if replace else (),
                )
            )
            count += 1
    return count


async def remove_owner(engine: AsyncEngine, resource_type: str, object_id: str) -> bool:
    """Forget an object; ``False`` if it was not registered."""
    r = tables.registry.c
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.registry.delete().where(
                r.resource_type == resource_type, r.object_id == object_id
            )
        )
    return result.rowcount > 0


def parse_csv(lines: Iterable[str]) -> list[OwnerRow]:
    """Rows of a ``resource_type,object_id,tenant`` CSV (header required).

    Raises ``CsvImportError`` listing every bad line, so one pass shows all of them.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
        raise CsvImportError([f"line 1: the header must be {','.join(CSV_COLUMNS)}"])
    rows: list[OwnerRow] = []
    problems: list[str] = []
    for fields in reader:
        if not fields:
            continue
        values = [f.strip() for f in fields]
        if len(values) != len(CSV_COLUMNS) or not all(values):
            problems.append(
                f"line {reader.line_num}: expected 3 non-empty fields "
                f"({','.join(CSV_COLUMNS)}), got {fields!r}"
            )
            continue
        rows.append(OwnerRow(*values))
    if problems:
        raise CsvImportError(problems)
    return rows


async def import_csv(engine: AsyncEngine, lines: Iterable[str]) -> int:
    """Import a registry CSV all or nothing; returns how many owners were written."""
    return await set_owners(engine, parse_csv(lines))
