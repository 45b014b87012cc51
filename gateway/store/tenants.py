"""Tenants: the boundary every object, membership and API key belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, false, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import insert_ignoring_duplicates, reading, writing


@dataclass(frozen=True, slots=True)
class TenantRow:
    id: str
    """The slug memberships, keys and rules name (``acme``)."""
    display_name: str
    active: bool
    created_at: float


def inactive_tenants() -> Select[Any]:
    """Ids of deactivated tenants: a membership in one of them grants nothing."""
    return select(tables.tenants.c.id).where(tables.tenants.c.active == false())


async def inactive_tenant_ids(engine: AsyncEngine) -> set[str]:
    async with reading(engine) as conn:
        return {str(row.id) for row in await conn.execute(inactive_tenants())}


async def create_tenant(
    engine: AsyncEngine, tenant_id: str, *, display_name: str, now: float
) -> bool:
    """Create a tenant; ``False`` if the id is taken already."""
    async with writing(engine) as conn:
        result = await conn.execute(
            insert_ignoring_duplicates(conn, tables.tenants, ("id",)).values(
                id=tenant_id, display_name=display_name, active=True, created_at=now
            )
        )
    return result.rowcount > 0


async def get_tenant(engine: AsyncEngine, tenant_id: str) -> TenantRow | None:
    async with reading(engine) as conn:
        row = (
            await conn.execute(select(tables.tenants).where(tables.tenants.c.id == tenant_id))
        ).first()
    return None if row is None else _tenant_row(row)


async def list_tenants(engine: AsyncEngine) -> list[TenantRow]:
    async with reading(engine) as conn:
        rows = (await conn.execute(select(tables.tenants).order_by(tables.tenants.c.id))).all()
    return [_tenant_row(row) for row in rows]


async def update_tenant(engine: AsyncEngine, tenant_id: str, **changes: object) -> bool:
    """Change ``display_name`` and/or ``active``; ``False`` if there is no such tenant."""
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.tenants).where(tables.tenants.c.id == tenant_id).values(**changes)
        )
    return result.rowcount > 0


async def member_ids(engine: AsyncEngine, tenant_id: str) -> list[int]:
    """Ids of the users holding any membership in the tenant."""
    m = tables.memberships.c
    async with reading(engine) as conn:
        rows = await conn.execute(select(m.user_id).where(m.tenant == tenant_id).distinct())
        return sorted(int(row.user_id) for row in rows)


def _tenant_row(row: Row[Any]) -> TenantRow:
    return TenantRow(
        id=row.id,
        display_name=row.display_name,
        active=bool(row.active),
        created_at=float(row.created_at),
    )
