"""Passkeys (WebAuthn credentials) and the one-time challenges of their ceremonies.

A challenge is 32 random bytes the browser's authenticator signs over. The store keeps
only its SHA-256, what it is for, for whom (``None`` for a password-less sign-in, where
the passkey names its owner) and until when. It is consumed by a conditional DELETE, so
exactly one answer can use it: a replayed attestation or assertion finds it gone.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing

REGISTER = "register"
AUTHENTICATE = "authenticate"
CHALLENGE_BYTES = 32
CHALLENGE_TTL = 300.0
"""Five minutes: a ceremony is a click and a touch, not a coffee break."""


def challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


async def issue_challenge(
    engine: AsyncEngine, *, purpose: str, user_id: int | None, now: float
) -> bytes:
    """A fresh random challenge for one ceremony; expired ones of anybody are swept."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    c = tables.webauthn_challenges.c
    async with writing(engine) as conn:
        await conn.execute(delete(tables.webauthn_challenges).where(c.expires_at < now))
        await conn.execute(
            insert(tables.webauthn_challenges).values(
                challenge_hash=challenge_hash(challenge),
                user_id=user_id,
                purpose=purpose,
                expires_at=now + CHALLENGE_TTL,
            )
        )
    return challenge


async def consume_challenge(
    engine: AsyncEngine, challenge: bytes, *, purpose: str, user_id: int | None, now: float
) -> bool:
    """Use a challenge once: ``True`` for exactly one caller, and only while it is live
    and was issued for this ``purpose`` and this person (or for nobody in particular)."""
    c = tables.webauthn_challenges.c
    owner = c.user_id.is_(None) if user_id is None else c.user_id == user_id
    async with writing(engine) as conn:
        result = await conn.execute(
            delete(tables.webauthn_challenges).where(
                c.challenge_hash == challenge_hash(challenge),
                c.purpose == purpose,
                c.expires_at >= now,
                owner,
            )
        )
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class Passkey:
    """A registered credential (its public key only: the private key never leaves the
    authenticator)."""

    id: int
    user_id: int
    credential_id: str
    """base64url of the authenticator's credential id."""
    public_key: bytes
    """COSE public key."""
    sign_count: int
    transports: tuple[str, ...]
    name: str
    created_at: float
    last_used_at: float | None


async def add_passkey(
    engine: AsyncEngine,
    *,
    user_id: int,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    transports: list[str],
    name: str,
    now: float,
) -> int | None:
    """Store a new passkey; ``None`` when that credential id is registered already."""
    p = tables.passkeys.c
    async with writing(engine) as conn:
        taken = await conn.execute(select(p.id).where(p.credential_id == credential_id))
        if taken.first() is not None:
            return None
        result = await conn.execute(
            insert(tables.passkeys)
            .values(
                user_id=user_id,
                credential_id=credential_id,
                public_key=public_key,
                sign_count=sign_count,
                transports=json.dumps(transports),
                name=name,
                created_at=now,
            )
            .returning(p.id)
        )
        return int(result.scalar_one())


async def passkeys_of(engine: AsyncEngine, user_id: int) -> list[Passkey]:
    """A person's passkeys, oldest first."""
    p = tables.passkeys.c
    async with reading(engine) as conn:
        rows = await conn.execute(
            select(tables.passkeys).where(p.user_id == user_id).order_by(p.id)
        )
        return [_passkey(row) for row in rows]


async def find_passkey(engine: AsyncEngine, credential_id: str) -> Passkey | None:
    p = tables.passkeys.c
    async with reading(engine) as conn:
        row = (
            await conn.execute(select(tables.passkeys).where(p.credential_id == credential_id))
        ).first()
    return None if row is None else _passkey(row)


async def record_use(
    engine: AsyncEngine, passkey: Passkey, *, new_sign_count: int, now: float
) -> bool:
    """Note a verified use. Conditional on the counter read before verifying: of two
    answers racing with the same counter, one wins (``False`` for the other)."""
    p = tables.passkeys.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.passkeys)
            .where(p.id == passkey.id, p.sign_count == passkey.sign_count)
            .values(sign_count=new_sign_count, last_used_at=now)
        )
    return result.rowcount == 1


async def remove_passkey(engine: AsyncEngine, *, user_id: int, passkey_id: int) -> Passkey | None:
    """Delete one of ``user_id``'s own passkeys; the removed one, or ``None``."""
    p = tables.passkeys.c
    async with writing(engine) as conn:
        row = (
            await conn.execute(
                select(tables.passkeys).where(p.id == passkey_id, p.user_id == user_id)
            )
        ).first()
        if row is None:
            return None
        await conn.execute(delete(tables.passkeys).where(p.id == passkey_id, p.user_id == user_id))
    return _passkey(row)


def _passkey(row: Row[Any]) -> Passkey:
    return Passkey(
        id=int(row.id),
        user_id=int(row.user_id),
        credential_id=row.credential_id,
        public_key=bytes(row.public_key),
        sign_count=int(row.sign_count),
        transports=tuple(json.loads(row.transports)),
        name=row.name,
        created_at=float(row.created_at),
        last_used_at=None if row.last_used_at is None else float(row.last_used_at),
    )
