"""Password tries every replica counts: rows of ``rate_limit_hits``, one per try.

A bucket (a keyed digest of an address or a client, ``rate_limits.digest``) holds one
row per password try that has not been cleared, each remembered for ``memory``
seconds. A try is recorded *before* the password is checked, in the transaction that
decides whether it may happen: concurrent tries then see each other, so a burst sent
at the moment a wait ends gets one try, not a hundred. A right password takes its own
row back and clears the account's bucket: what is left counts wrong tries.

The wait after ``n`` remembered tries is ``base * 2 ** (n - free)`` from the latest
one (none while ``n < free``), at most ``cap``: a wait that always ends, never a lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import tables
from gateway.store.engine import lock_name, reading, writing

_hits = tables.rate_limit_hits


@dataclass(frozen=True, slots=True)
class Backoff:
    """How tries are spaced: free ones, then a doubling wait up to a cap."""

    free: int
    base: float
    cap: float
    memory: float
    """Seconds a try is remembered (a wrong one counts that long)."""

    def wait_after(self, tries: int) -> float:
        """Seconds from the latest of ``tries`` remembered tries until the next may start."""
        if tries < self.free:
            return 0.0
        return min(self.base * 2.0 ** min(tries - self.free, 60), self.cap)


async def begin_try(
    engine: AsyncEngine,
    buckets: Sequence[str],
    backoff: Backoff,
    *,
    now: float,
    sweep: bool = False,
) -> str | float:
    """Record a try in every bucket and return its item, or the seconds to wait.

    Nothing is recorded when any bucket must wait: a refused try costs nobody anything.
    """
    async with writing(engine) as conn:
        if sweep:
            await conn.execute(delete(_hits).where(_hits.c.expires_at <= now))
        wait = 0.0
        for bucket in buckets:
            await lock_name(conn, bucket)
            wait = max(wait, await _wait(conn, bucket, backoff, now))
        if wait > 0:
            return wait
        item = secrets.token_hex(16)
        for bucket in buckets:
            values = {"bucket": bucket, "item": item, "expires_at": now + backoff.memory}
            await conn.execute(insert(_hits).values(**values))
    return item


async def _wait(conn: AsyncConnection, bucket: str, backoff: Backoff, now: float) -> float:
    query = select(func.count(), func.max(_hits.c.expires_at)).where(
        _hits.c.bucket == bucket, _hits.c.expires_at > now
    )
    tries, latest_expiry = (await conn.execute(query)).one()
    if not tries:
        return 0.0
    latest = float(latest_expiry) - backoff.memory
    return max(latest + backoff.wait_after(int(tries)) - now, 0.0)


async def remembered(engine: AsyncEngine, bucket: str, *, now: float) -> int:
    """How many tries ``bucket`` remembers at ``now`` (for tests and operators)."""
    query = select(func.count()).where(_hits.c.bucket == bucket, _hits.c.expires_at > now)
    async with reading(engine) as conn:
        return int((await conn.execute(query)).scalar_one())


async def succeeded(
    engine: AsyncEngine, *, item: str, cleared: Sequence[str], kept: Sequence[str]
) -> None:
    """A try was right: forget every try in ``cleared`` and this one in ``kept``."""
    async with writing(engine) as conn:
        if cleared:
            await conn.execute(delete(_hits).where(_hits.c.bucket.in_(list(cleared))))
        if kept:
            await conn.execute(
                delete(_hits).where(_hits.c.bucket.in_(list(kept)), _hits.c.item == item)
            )
