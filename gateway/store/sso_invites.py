"""Invites addressed to one OIDC provider.

An administrator adds a person and names the provider they will sign in with; the first
sign-in from that provider whose verified email matches ties its (issuer, subject) to the
person and consumes the invite. Invites expire, so a forgotten one is not an open door
for whoever holds that address at the provider later.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing


async def invite(
    engine: AsyncEngine, *, email: str, provider: str, user_id: int, ttl: float, now: float
) -> None:
    """Record (or renew) a pending invite of ``user_id`` through ``provider``."""
    values = {
        "email": email,
        "provider": provider,
        "user_id": user_id,
        "created_at": now,
        "expires_at": now + ttl,
        "consumed_at": None,
    }
    async with writing(engine) as conn:
        await conn.execute(
            upsert(
                conn,
                tables.sso_invites,
                ("email", "provider"),
                values,
                update=("user_id", "created_at", "expires_at", "consumed_at"),
            )
        )


async def consume(engine: AsyncEngine, *, email: str, provider: str, now: float) -> int | None:
    """The invited user's id, consuming the invite; ``None`` if none is pending."""
    t = tables.sso_invites
    pending = (
        (t.c.email == email)
        & (t.c.provider == provider)
        & t.c.consumed_at.is_(None)
        & (t.c.expires_at > now)
    )
    async with writing(engine) as conn:
        user_id = (await conn.execute(select(t.c.user_id).where(pending))).scalar()
        if user_id is None:
            return None
        done = await conn.execute(update(t).where(pending).values(consumed_at=now))
    return int(user_id) if done.rowcount == 1 else None


async def pending_for(engine: AsyncEngine, email: str, now: float) -> list[str]:
    """Providers ``email`` holds a pending invite for."""
    t = tables.sso_invites
    async with reading(engine) as conn:
        rows = await conn.execute(
            select(t.c.provider).where(
                t.c.email == email, t.c.consumed_at.is_(None), t.c.expires_at > now
            )
        )
        return sorted(row.provider for row in rows)
