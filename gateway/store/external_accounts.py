"""Accounts at OpenID Providers, each tied to one gateway user by (issuer, subject).

The email a provider asserts can change or be reused; the subject it issues cannot,
so a returning person is found by (issuer, subject) and never by email alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import Membership
from gateway.store import tables
from gateway.store.engine import insert_ignoring_duplicates, reading, writing


@dataclass(frozen=True, slots=True)
class ExternalAccount:
    issuer: str
    subject: str
    user_id: int
    provider: str
    granted: tuple[Membership, ...]
    """Memberships the provider's claims granted at the last sign-in."""


async def find_account(engine: AsyncEngine, issuer: str, subject: str) -> ExternalAccount | None:
    t = tables.external_accounts
    async with reading(engine) as conn:
        row = (
            await conn.execute(select(t).where(t.c.issuer == issuer, t.c.subject == subject))
        ).first()
    if row is None:
        return None
    granted = tuple(Membership(tenant, role) for tenant, role in json.loads(row.granted))
    return ExternalAccount(row.issuer, row.subject, row.user_id, row.provider, granted)


async def accounts_of(engine: AsyncEngine, user_id: int) -> list[ExternalAccount]:
    """Every external account tied to ``user_id``, by provider."""
    t = tables.external_accounts
    async with reading(engine) as conn:
        rows = await conn.execute(
            select(t).where(t.c.user_id == user_id).order_by(t.c.provider, t.c.created_at)
        )
        return [
            ExternalAccount(
                row.issuer,
                row.subject,
                row.user_id,
                row.provider,
                tuple(Membership(tenant, role) for tenant, role in json.loads(row.granted)),
            )
            for row in rows
        ]


async def link_account(
    engine: AsyncEngine, *, issuer: str, subject: str, user_id: int, provider: str, now: float
) -> bool:
    """Tie (issuer, subject) to ``user_id``; ``False`` if it is tied to someone else already.

    An existing tie is never moved: a race between two first sign-ins keeps the first.
    """
    t = tables.external_accounts
    async with writing(engine) as conn:
        await conn.execute(
            insert_ignoring_duplicates(
                conn, tables.external_accounts, ("issuer", "subject")
            ).values(
                issuer=issuer,
                subject=subject,
                user_id=user_id,
                provider=provider,
                granted="[]",
                created_at=now,
                last_login=now,
            )
        )
        owner = await conn.execute(
            select(t.c.user_id).where(t.c.issuer == issuer, t.c.subject == subject)
        )
        return bool(owner.scalar_one() == user_id)


async def record_login(
    engine: AsyncEngine,
    *,
    issuer: str,
    subject: str,
    granted: tuple[Membership, ...],
    now: float,
) -> None:
    t = tables.external_accounts
    async with writing(engine) as conn:
        await conn.execute(
            update(t)
            .where(t.c.issuer == issuer, t.c.subject == subject)
            .values(
                last_login=now,
                granted=json.dumps([[m.tenant, m.role] for m in granted]),
            )
        )
