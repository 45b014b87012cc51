"""Authenticator-app secrets: one per person, sealed, with the newest step used.

The row holds the secret only as the sealing layer (``gateway.auth.totp.SecretSeal``)
made it; this module never sees it in clear. A code is accepted by a conditional
UPDATE that moves ``last_step`` forward: of two requests carrying the same code, only
one can move it, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing


@dataclass(frozen=True, slots=True)
class StoredAuthenticator:
    sealed_secret: str
    confirmed_at: float | None
    last_step: int | None


async def authenticator_of(engine: AsyncEngine, user_id: int) -> StoredAuthenticator | None:
    """The confirmed authenticator of ``user_id`` (an unconfirmed one is no factor)."""
    t = tables.totp_factors.c
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(t.secret, t.confirmed_at, t.last_step).where(
                    t.user_id == user_id, t.confirmed_at.is_not(None)
                )
            )
        ).first()
    if row is None:
        return None
    return StoredAuthenticator(row.secret, row.confirmed_at, row.last_step)


async def confirm_authenticator(
    engine: AsyncEngine, user_id: int, *, sealed_secret: str, step: int, now: float
) -> None:
    """Make ``sealed_secret`` the person's authenticator (a new one replaces the old),
    confirmed by a code of ``step``: that code cannot be used again to sign in."""
    async with writing(engine) as conn:
        await conn.execute(
            upsert(
                conn,
                tables.totp_factors,
                ["user_id"],
                {
                    "user_id": user_id,
                    "secret": sealed_secret,
                    "created_at": now,
                    "confirmed_at": now,
                    "last_step": step,
                },
                update=["secret", "created_at", "confirmed_at", "last_step"],
            )
        )


async def use_step(engine: AsyncEngine, user_id: int, step: int) -> bool:
    """Accept a code of ``step`` once: ``True`` for exactly one caller, and only if no
    code of this step or a later one was accepted before."""
    t = tables.totp_factors.c
    async with writing(engine) as conn:
        moved = await conn.execute(
            update(tables.totp_factors)
            .where(
                t.user_id == user_id,
                t.confirmed_at.is_not(None),
                (t.last_step.is_(None)) | (t.last_step < step),
            )
            .values(last_step=step)
        )
    return moved.rowcount == 1


async def remove_authenticator(engine: AsyncEngine, user_id: int) -> bool:
    async with writing(engine) as conn:
        gone = await conn.execute(
            delete(tables.totp_factors).where(tables.totp_factors.c.user_id == user_id)
        )
    return gone.rowcount == 1
