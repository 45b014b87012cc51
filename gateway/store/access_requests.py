"""Access requests: a signed-in person asks a tenant's admins for a role there.

A request is decided once: ``decide`` moves it from ``pending`` in one statement, so two
admins deciding at the same moment cannot both win.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing

STATES = ("pending", "approved", "declined")


@dataclass(frozen=True, slots=True)
class AccessRequestRow:
    """One access request as stored, with the requester's email."""

    id: int
    user_id: int
    email: str
    """The requester's (lower-cased) email."""
    tenant: str
    role_wanted: str | None
    """The role the person asked for, if they named one."""
    what: str
    """What they need access to (prefilled with the refused address)."""
    why: str
    created_at: float
    state: str
    """``pending``, ``approved`` or ``declined``."""
    decided_by: str | None
    decided_at: float | None
    granted_role: str | None
    comment: str
    """The decider's comment (a decline's reason)."""


async def create_request(
    engine: AsyncEngine,
    *,
    user_id: int,
    tenant: str,
    role_wanted: str | None,
    what: str,
    why: str,
    now: float,
) -> int:
    """Store a pending request; returns its id."""
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.access_requests.insert()
            .values(
                user_id=user_id,
                tenant=tenant,
                role_wanted=role_wanted,
                what=what,
                why=why,
                created_at=now,
                state="pending",
                comment="",
            )
            .returning(tables.access_requests.c.id)
        )
        return int(result.scalar_one())


async def count_requests(
    engine: AsyncEngine, user_id: int, *, since: float | None = None, pending: bool = False
) -> int:
    """How many requests the person made (since ``since``; only pending ones if asked)."""
    r = tables.access_requests.c
    query = select(func.count()).select_from(tables.access_requests).where(r.user_id == user_id)
    if since is not None:
        query = query.where(r.created_at >= since)
    if pending:
        query = query.where(r.state == "pending")
    async with reading(engine) as conn:
        return int((await conn.execute(query)).scalar_one())


async def get_request(engine: AsyncEngine, request_id: int) -> AccessRequestRow | None:
    async with reading(engine) as conn:
        row = (
            await conn.execute(_query().where(tables.access_requests.c.id == request_id))
        ).first()
    return None if row is None else _row(row)


async def list_requests(
    engine: AsyncEngine,
    *,
    tenants: Collection[str] | None = None,
    state: str | None = None,
    user_id: int | None = None,
) -> list[AccessRequestRow]:
    """Requests, oldest first; only into ``tenants`` / in ``state`` / of ``user_id`` if given."""
    r = tables.access_requests.c
    query = _query().order_by(r.created_at, r.id)
    if tenants is not None:
        query = query.where(r.tenant.in_(list(tenants)))
    if state is not None:
        query = query.where(r.state == state)
    if user_id is not None:
        query = query.where(r.user_id == user_id)
    async with reading(engine) as conn:
        return [_row(row) for row in await conn.execute(query)]


async def decide(
    engine: AsyncEngine,
    request_id: int,
    *,
    state: str,
    by: str,
    at: float,
    granted_role: str | None = None,
    comment: str = "",
) -> bool:
    """Approve or decline a pending request; ``False`` if it was not pending (any more)."""
    r = tables.access_requests.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.access_requests)
            .where(r.id == request_id, r.state == "pending")
            .values(
                state=state,
                decided_by=by,
                decided_at=at,
                granted_role=granted_role,
                comment=comment,
            )
        )
    return result.rowcount > 0


def _query() -> Select[Any]:
    return select(tables.access_requests, tables.users.c.email).join(
        tables.users, tables.users.c.id == tables.access_requests.c.user_id
    )


def _row(row: Row[Any]) -> AccessRequestRow:
    return AccessRequestRow(
        id=int(row.id),
        user_id=int(row.user_id),
        email=row.email,
        tenant=row.tenant,
        role_wanted=row.role_wanted,
        what=row.what,
        why=row.why,
        created_at=float(row.created_at),
        state=row.state,
        decided_by=row.decided_by,
        decided_at=None if row.decided_at is None else float(row.decided_at),
        granted_role=row.granted_role,
        comment=row.comment,
    )
