"""What access reviews read and keep: people's last activity, and review attestations."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing


@dataclass(frozen=True, slots=True)
class AttestationRow:
    """ "Reviewed by ``reviewer`` at ``at``" for one tenant."""

    id: int
    tenant: str
    reviewer: str
    at: float
    comment: str


async def last_activity(engine: AsyncEngine, user_ids: Collection[int]) -> dict[int, float]:
    """Each person's newest sign-in or request: the latest ``last_seen`` of any of their
    sessions (ended ones too) or SSO sign-in. People with neither are left out."""
    s, a = tables.sessions.c, tables.external_accounts.c
    ids = list(user_ids)
    found: dict[int, float] = {}
    async with reading(engine) as conn:
        for query in (
            select(s.user_id, func.max(s.last_seen)).where(s.user_id.in_(ids)).group_by(s.user_id),
            select(a.user_id, func.max(a.last_login)).where(a.user_id.in_(ids)).group_by(a.user_id),
        ):
            for user_id, seen in await conn.execute(query):
                if seen is not None:
                    found[int(user_id)] = max(float(seen), found.get(int(user_id), 0.0))
    return found


async def add_attestation(
    engine: AsyncEngine, *, tenant: str, reviewer: str, at: float, comment: str
) -> int:
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.review_attestations.insert()
            .values(tenant=tenant, reviewer=reviewer, at=at, comment=comment)
            .returning(tables.review_attestations.c.id)
        )
        return int(result.scalar_one())


async def list_attestations(engine: AsyncEngine, tenant: str) -> list[AttestationRow]:
    """The tenant's attestations, newest first."""
    t = tables.review_attestations.c
    query = (
        select(tables.review_attestations)
        .where(t.tenant == tenant)
        .order_by(t.at.desc(), t.id.desc())
    )
    async with reading(engine) as conn:
        return [_row(row) for row in await conn.execute(query)]


def _row(row: Row[Any]) -> AttestationRow:
    return AttestationRow(
        id=int(row.id),
        tenant=row.tenant,
        reviewer=row.reviewer,
        at=float(row.at),
        comment=row.comment,
    )
