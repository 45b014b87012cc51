"""Rate limits every replica shares: hits counted in the store, one transaction each.

A hit is a row ``(bucket, item, expires_at)``; a bucket's hits within its window are
its rows that have not expired yet. Recording a hit and counting the bucket happen in
one writing transaction that first locks the bucket (``engine.lock_name``): SQLite's
writers already take turns, on PostgreSQL an advisory lock on the bucket makes them, so
two replicas racing for a bucket's last slot cannot both get it. Each row carries its
own expiry, so the sweep deletes one indexed range of old rows whatever the window
was; a limiter asks for it in its own transaction once a minute (``SWEEP_SECONDS``).

Times are the Unix time of the process that records a hit: replicas whose clocks
differ by a second see a window end a second apart, no more.

Buckets and items are 64-hex-digit digests (``digest``), never the address, email or
object id they stand for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import tables
from gateway.store.engine import lock_name, reading, upsert, writing
from gateway.store.notify import ENUMERATION, notify

SWEEP_SECONDS = 60.0
"""How often one limiter deletes the expired rows of every limiter."""

_hits = tables.rate_limit_hits
_blocks = tables.enumeration_blocks


def digest(namespace: str, key: str, *, secret: bytes | None = None) -> str:
    """The form of ``key`` the store keeps: SHA-256, or HMAC-SHA-256 with ``secret``."""
    message = f"{namespace}\0{key}".encode()
    if secret is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class SweepTimer:
    """Tells one limiter when its next transaction should also sweep."""

    def __init__(self) -> None:
        self._next = 0.0

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + SWEEP_SECONDS
        return True


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` hits in ``bucket`` within any ``window`` seconds."""

    bucket: str
    limit: int
    window: float


@dataclass(frozen=True, slots=True)
class Denials:
    """A principal's distinct denied ids within the window, after recording one more."""

    distinct: int
    newly_blocked: bool
    """This denial crossed the threshold and stored the block (one replica only)."""


async def take(
    engine: AsyncEngine, limits: Sequence[Limit], *, now: float, sweep: bool = False
) -> float:
    """Count one hit against each limit in turn, in one transaction.

    0.0 when each had room (each hit recorded); otherwise the seconds until the first
    full one has room again: the limits before it keep their hit, later ones get none.
    """
    async with writing(engine) as conn:
        if sweep:
            await _sweep(conn, now)
        for limit in limits:
            await lock_name(conn, limit.bucket)
            wait = await _take_one(conn, limit, now)
            if wait:
                return wait
    return 0.0


async def _take_one(conn: AsyncConnection, limit: Limit, now: float) -> float:
    live = _hits.c.expires_at > now
    query = select(func.count(), func.min(_hits.c.expires_at)).where(
        _hits.c.bucket == limit.bucket, live
    )
    count, oldest = (await conn.execute(query)).one()
    if count >= limit.limit:
        return max(float(oldest) - now, 1e-6)
    await conn.execute(
        insert(_hits).values(
            bucket=limit.bucket, item=secrets.token_hex(16), expires_at=now + limit.window
        )
    )
    return 0.0


async def note_denial(
    engine: AsyncEngine,
    *,
    principal: str,
    item: str,
    window: float,
    block_after: int,
    block_for: float,
    now: float,
    sweep: bool = False,
) -> Denials:
    """Record a denial of ``principal`` on ``item`` (a digest) and count the distinct ones.

    At ``block_after`` the principal is blocked until ``now + block_for``, unless a block
    is running already: of the replicas that cross the threshold at once, exactly one
    stores the block and is told ``newly_blocked``.
    """
    bucket = digest("enumeration", principal)
    async with writing(engine) as conn:
        if sweep:
            await _sweep(conn, now)
        await lock_name(conn, bucket)
        values = {"bucket": bucket, "item": item, "expires_at": now + window}
        await conn.execute(upsert(conn, _hits, ("bucket", "item"), values, update=("expires_at",)))
        count = select(func.count()).where(_hits.c.bucket == bucket, _hits.c.expires_at > now)
        distinct = int((await conn.execute(count)).scalar_one())
        if distinct < block_after or await _blocked_until(conn, principal) > now:
            return Denials(distinct, newly_blocked=False)
        block = {"principal": principal, "blocked_until": now + block_for}
        await conn.execute(upsert(conn, _blocks, ("principal",), block, update=("blocked_until",)))
        await notify(conn, ENUMERATION)  # every replica reads the blocks at once
    return Denials(distinct, newly_blocked=True)


async def _blocked_until(conn: AsyncConnection, principal: str) -> float:
    query = select(_blocks.c.blocked_until).where(_blocks.c.principal == principal)
    until = (await conn.execute(query)).scalar_one_or_none()
    return float(until) if until is not None else 0.0


async def active_blocks(engine: AsyncEngine, *, now: float) -> dict[str, float]:
    """Every principal blocked at ``now``, with the time the block ends."""
    query = select(_blocks.c.principal, _blocks.c.blocked_until).where(
        _blocks.c.blocked_until > now
    )
    async with reading(engine) as conn:
        return {str(p): float(until) for p, until in await conn.execute(query)}


async def _sweep(conn: AsyncConnection, now: float) -> None:
    """Delete hits that left their window and blocks that ended (two index ranges)."""
    await conn.execute(delete(_hits).where(_hits.c.expires_at <= now))
    await conn.execute(delete(_blocks).where(_blocks.c.blocked_until <= now))
