"""The mail outbox: messages waiting for delivery, claimed by one sender at a time.

Several gateways may share one store. A sender claims a message by moving its
``claimed_until`` lease forward with a conditional ``UPDATE`` (only if the lease has
run out), which needs no row locks and works the same on SQLite and PostgreSQL:
of two senders racing for a row, exactly one update matches. Each claim carries a
random ``claim`` token, and only its holder may delete or reschedule the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing

_T = tables.mail_outbox
_C = _T.c


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """One claimed message: ours to deliver, drop or reschedule until the lease ends."""

    id: int
    kind: str
    """``magic-link`` or ``invite``."""
    recipient: str
    sealed: str
    """The whole message, sealed (``mail_outbox.MailSeal``): it holds a sign-in link."""
    created_at: float
    expires_at: float
    """When the link inside stops working: an undelivered message is dropped then."""
    attempts: int
    """Delivery attempts that failed so far."""
    claim: str


async def enqueue(
    engine: AsyncEngine,
    *,
    kind: str,
    recipient: str,
    sealed: str,
    now: float,
    expires_at: float,
    claim: str,
    lease: float,
) -> QueuedMail:
    """Store a message, already claimed by ``claim`` (its sender tries it at once)."""
    async with writing(engine) as conn:
        result = await conn.execute(
            insert(_T).values(
                kind=kind,
                recipient=recipient,
                sealed=sealed,
                created_at=now,
                expires_at=expires_at,
                attempts=0,
                next_attempt=now,
                claimed_until=now + lease,
                claim=claim,
                last_error="",
            )
        )
        (mail_id,) = result.inserted_primary_key or (0,)
    return QueuedMail(int(mail_id), kind, recipient, sealed, now, expires_at, 0, claim)


async def claim_due(
    engine: AsyncEngine, *, now: float, lease: float, claim: str, limit: int = 20
) -> list[QueuedMail]:
    """Claim up to ``limit`` messages that are due and not held by another sender."""
    async with writing(engine) as conn:
        candidates = (
            await conn.execute(
                select(_C.id)
                .where(_C.next_attempt <= now, _C.claimed_until <= now)
                .order_by(_C.next_attempt)
                .limit(limit)
            )
        ).scalars()
        ours: list[int] = []
        for mail_id in list(candidates):
            taken = await conn.execute(
                update(_T)
                .where(_C.id == mail_id, _C.claimed_until <= now)
                .values(claimed_until=now + lease, claim=claim)
            )
            if taken.rowcount == 1:
                ours.append(mail_id)
        if not ours:
            return []
        rows = await conn.execute(
            select(
                _C.id,
                _C.kind,
                _C.recipient,
                _C.sealed,
                _C.created_at,
                _C.expires_at,
                _C.attempts,
                _C.claim,
            ).where(_C.id.in_(ours), _C.claim == claim)
        )
        return [QueuedMail(*row) for row in rows]


async def remove(engine: AsyncEngine, mail: QueuedMail) -> bool:
    """Delete a delivered or dropped message; ``False`` if the claim was lost meanwhile."""
    async with writing(engine) as conn:
        done = await conn.execute(delete(_T).where(_C.id == mail.id, _C.claim == mail.claim))
    return bool(done.rowcount)


async def reschedule(
    engine: AsyncEngine, mail: QueuedMail, *, next_attempt: float, error: str
) -> None:
    """Count a failed attempt and release the claim until ``next_attempt``."""
    async with writing(engine) as conn:
        await conn.execute(
            update(_T)
            .where(_C.id == mail.id, _C.claim == mail.claim)
            .values(
                attempts=_C.attempts + 1,
                next_attempt=next_attempt,
                claimed_until=0.0,
                claim="",
                last_error=error[:500],
            )
        )


async def waiting(engine: AsyncEngine) -> Sequence[tuple[str, str, int]]:
    """(kind, recipient, attempts) of every message still waiting, oldest first."""
    async with reading(engine) as conn:
        rows = await conn.execute(
            select(_C.kind, _C.recipient, _C.attempts).order_by(_C.created_at)
        )
        return [(kind, recipient, attempts) for kind, recipient, attempts in rows]


async def count(engine: AsyncEngine) -> int:
    async with reading(engine) as conn:
        return int((await conn.execute(select(func.count()).select_from(_T))).scalar_one())
