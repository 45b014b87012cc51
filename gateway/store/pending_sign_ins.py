"""Sign-ins that have shown their first factor and wait for the second.

The browser holds a random token (a cookie); the store keeps its SHA-256, who is
signing in, how, and where they go next. A pending sign-in lives minutes, allows a few
wrong codes, and is consumed exactly once when the second factor is shown.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing

SIGN_IN = "sign-in"
"""No session yet: the second factor completes a sign-in."""
STEP_UP = "step-up"
"""A live session shows a second factor again (a route's ``step_up`` or ``mfa``)."""


def pending_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    id_hash: str
    user_id: int
    method: str
    """The first factor shown (an ``AuthMethod`` value)."""
    purpose: str
    rd: str
    created_at: float
    expires_at: float
    attempts: int
    details: dict[str, Any] = field(default_factory=dict)
    """Audit details of the first factor (provider, subject) and its ``auth_time``."""


async def create_pending(
    engine: AsyncEngine,
    *,
    user_id: int,
    method: str,
    purpose: str,
    rd: str,
    details: dict[str, Any],
    now: float,
    ttl: float,
) -> str:
    """A new pending sign-in; returns the token for the browser's cookie."""
    token = secrets.token_urlsafe(32)
    async with writing(engine) as conn:
        await conn.execute(
            insert(tables.pending_sign_ins).values(
                id_hash=pending_hash(token),
                user_id=user_id,
                method=method,
                purpose=purpose,
                rd=rd,
                details=json.dumps(details),
                created_at=now,
                expires_at=now + ttl,
            )
        )
        # Expired ones of anybody go as new ones come: the table stays small.
        await conn.execute(
            delete(tables.pending_sign_ins).where(tables.pending_sign_ins.c.expires_at < now)
        )
    return token


async def get_pending(engine: AsyncEngine, token: str, now: float) -> PendingSignIn | None:
    """The pending sign-in a cookie names, if it has not expired or been used."""
    p = tables.pending_sign_ins.c
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(tables.pending_sign_ins).where(
                    p.id_hash == pending_hash(token), p.expires_at >= now
                )
            )
        ).first()
    return None if row is None else _pending(row)


async def note_failure(engine: AsyncEngine, id_hash: str, *, max_attempts: int) -> bool:
    """Count a wrong second factor; ``False`` (and the pending sign-in is gone) once
    ``max_attempts`` have been used up."""
    p = tables.pending_sign_ins.c
    async with writing(engine) as conn:
        await conn.execute(
            update(tables.pending_sign_ins)
            .where(p.id_hash == id_hash)
            .values(attempts=p.attempts + 1)
        )
        gone = await conn.execute(
            delete(tables.pending_sign_ins).where(p.id_hash == id_hash, p.attempts >= max_attempts)
        )
        exists = (
            await conn.execute(select(p.id_hash).where(p.id_hash == id_hash))
        ).first() is not None
    return gone.rowcount == 0 and exists


async def consume_pending(engine: AsyncEngine, id_hash: str, now: float) -> bool:
    """Use a pending sign-in once: exactly one caller gets ``True``."""
    p = tables.pending_sign_ins.c
    async with writing(engine) as conn:
        result = await conn.execute(
            delete(tables.pending_sign_ins).where(p.id_hash == id_hash, p.expires_at >= now)
        )
    return result.rowcount == 1


async def drop_pending_of(engine: AsyncEngine, user_id: int) -> int:
    """Forget every pending sign-in of a person (their factors were reset)."""
    async with writing(engine) as conn:
        result = await conn.execute(
            delete(tables.pending_sign_ins).where(tables.pending_sign_ins.c.user_id == user_id)
        )
    return result.rowcount


def _pending(row: Row[Any]) -> PendingSignIn:
    return PendingSignIn(
        id_hash=row.id_hash,
        user_id=int(row.user_id),
        method=row.method,
        purpose=row.purpose,
        rd=row.rd,
        created_at=float(row.created_at),
        expires_at=float(row.expires_at),
        attempts=int(row.attempts),
        details=json.loads(row.details),
    )
