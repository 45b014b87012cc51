"""Local passwords as stored: one Argon2id hash (PHC string) per person."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a password sign-in needs to know about an address that has an account."""

    user_id: int
    email: str
    active: bool
    hash: str | None
    """The stored Argon2id hash; ``None`` when the person has set no password."""


async def credentials_of(engine: AsyncEngine, email: str) -> Credentials | None:
    """The account of ``email`` (lower-cased) and its hash, in one query; ``None`` if none."""
    users, passwords = tables.users, tables.passwords
    query = (
        select(users.c.id, users.c.email, users.c.active, passwords.c.hash)
        .select_from(users.outerjoin(passwords, passwords.c.user_id == users.c.id))
        .where(users.c.email == email.strip().lower())
    )
    async with reading(engine) as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Credentials(int(row.id), str(row.email), bool(row.active), row.hash)


async def hash_of(engine: AsyncEngine, user_id: int) -> str | None:
    """The stored hash of ``user_id``, or ``None`` when they have no password."""
    query = select(tables.passwords.c.hash).where(tables.passwords.c.user_id == user_id)
    async with reading(engine) as conn:
        found = (await conn.execute(query)).scalar_one_or_none()
    return None if found is None else str(found)


async def store_hash(engine: AsyncEngine, user_id: int, hashed: str, *, now: float) -> None:
    """Set (or replace) the person's password hash."""
    values = {"user_id": user_id, "hash": hashed, "set_at": now}
    async with writing(engine) as conn:
        await conn.execute(
            upsert(conn, tables.passwords, ("user_id",), values, update=("hash", "set_at"))
        )


async def replace_hash(engine: AsyncEngine, user_id: int, *, old: str, new: str) -> bool:
    """Swap ``old`` for ``new`` (a rehash with new parameters) unless the password was
    changed meanwhile; ``False`` then, and nothing changes."""
    p = tables.passwords
    async with writing(engine) as conn:
        result = await conn.execute(
            p.update().where(p.c.user_id == user_id, p.c.hash == old).values(hash=new)
        )
    return result.rowcount > 0
