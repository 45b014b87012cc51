"""Gateway-issued API keys for partners' systems: shown once, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing
from gateway.store.notify import REVOCATIONS, notify
from gateway.store.tenants import inactive_tenants

PREFIX = "ghk_"
REVOKED = "api-keys"
"""The ``gatehold_revocations`` payload of a key revocation."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: int
    label: str
    tenant: str
    role: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None = None
    """When a request last came with the key (written at most once a minute)."""
    admin: bool = False
    """Works only at the admin API (as admin of ``tenant``; of every tenant for ``*``),
    never for upstream traffic."""

    def live(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


async def create_key(
    engine: AsyncEngine,
    *,
    tenant: str,
    role: str,
    label: str,
    ttl: float,
    now: float,
    admin: bool = False,
) -> tuple[int, str]:
    """A new key (returned once, never stored) and its id."""
    key = PREFIX + secrets.token_urlsafe(32)
    async with writing(engine) as conn:
        result = await conn.execute(
            insert(tables.api_keys).values(
                key_hash=key_hash(key),
                label=label,
                tenant=tenant,
                role=role,
                created_at=now,
                expires_at=now + ttl,
                admin=admin,
            )
        )
    (key_id,) = result.inserted_primary_key or (0,)
    return int(key_id), key


def _key_columns() -> Select[Any]:
    c = tables.api_keys.c
    return select(
        c.id,
        c.label,
        c.tenant,
        c.role,
        c.created_at,
        c.expires_at,
        c.revoked_at,
        c.last_used_at,
        c.admin,
    )


async def _one_key(engine: AsyncEngine, query: Select[Any]) -> ApiKeyRow | None:
    async with reading(engine) as conn:
        row = (await conn.execute(query)).first()
    return ApiKeyRow(*row) if row else None


async def find_key(engine: AsyncEngine, key: str) -> ApiKeyRow | None:
    c = tables.api_keys.c
    # A key of a deactivated tenant grants nothing.
    query = _key_columns().where(c.key_hash == key_hash(key), c.tenant.not_in(inactive_tenants()))
    return await _one_key(engine, query)


async def get_key(engine: AsyncEngine, key_id: int) -> ApiKeyRow | None:
    """A key by its id, live or not (for admin views; live traffic uses ``find_key``)."""
    return await _one_key(engine, _key_columns().where(tables.api_keys.c.id == key_id))


async def revoke_key(engine: AsyncEngine, key_id: int, now: float) -> bool:
    c = tables.api_keys.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.api_keys)
            .where(c.id == key_id, c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount:
            await notify(conn, REVOCATIONS, REVOKED)
    return result.rowcount > 0


async def list_keys(engine: AsyncEngine) -> list[ApiKeyRow]:
    c = tables.api_keys.c
    async with reading(engine) as conn:
        rows = (await conn.execute(_key_columns().order_by(c.id))).all()
    return [ApiKeyRow(*row) for row in rows]


async def record_use(engine: AsyncEngine, used: Mapping[str, float], *, every: float) -> None:
    """Write when keys (by hash) were last used, in one transaction; a key whose stored
    use is less than ``every`` seconds older is left alone (other processes wrote it)."""
    c = tables.api_keys.c
    statement = (
        update(tables.api_keys)
        .where(
            c.key_hash == bindparam("hash"),
            or_(c.last_used_at.is_(None), c.last_used_at <= bindparam("stale")),
        )
        .values(last_used_at=bindparam("now"))
    )
    async with writing(engine) as conn:
        await conn.execute(
            statement, [{"hash": h, "now": t, "stale": t - every} for h, t in used.items()]
        )


async def revoked_since(engine: AsyncEngine, since: float) -> list[str]:
    """Hashes of the keys revoked at or after ``since``: processes poll it to evict them."""
    c = tables.api_keys.c
    async with reading(engine) as conn:
        rows = await conn.execute(select(c.key_hash).where(c.revoked_at >= since))
        return [str(row.key_hash) for row in rows]
