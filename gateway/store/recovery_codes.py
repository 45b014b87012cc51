"""Recovery codes: hashes only, a set per person, each code used at most once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing


async def replace_codes(
    engine: AsyncEngine, user_id: int, code_hashes: Sequence[str], *, now: float
) -> None:
    """A new set of codes; every earlier one of the person stops working (one transaction)."""
    async with writing(engine) as conn:
        await conn.execute(
            delete(tables.recovery_codes).where(tables.recovery_codes.c.user_id == user_id)
        )
        await conn.execute(
            insert(tables.recovery_codes),
            [{"user_id": user_id, "code_hash": h, "created_at": now} for h in code_hashes],
        )


async def use_code(engine: AsyncEngine, user_id: int, code_hash: str, *, now: float) -> int | None:
    """Spend one unused code of ``user_id``: how many are left, or ``None`` if it is not
    one of theirs or was already used. Of two concurrent uses exactly one succeeds."""
    c = tables.recovery_codes.c
    async with writing(engine) as conn:
        spent = await conn.execute(
            update(tables.recovery_codes)
            .where(c.user_id == user_id, c.code_hash == code_hash, c.used_at.is_(None))
            .values(used_at=now)
        )
        if spent.rowcount != 1:
            return None
        left = await conn.execute(
            select(func.count()).where(c.user_id == user_id, c.used_at.is_(None))
        )
        return int(left.scalar_one())


async def codes_left(engine: AsyncEngine, user_id: int) -> int:
    c = tables.recovery_codes.c
    async with reading(engine) as conn:
        left = await conn.execute(
            select(func.count()).where(c.user_id == user_id, c.used_at.is_(None))
        )
        return int(left.scalar_one())


async def drop_codes(engine: AsyncEngine, user_id: int) -> int:
    async with writing(engine) as conn:
        gone = await conn.execute(
            delete(tables.recovery_codes).where(tables.recovery_codes.c.user_id == user_id)
        )
    return gone.rowcount
