"""Magic sign-in links (SPEC §4): 256-bit single-use tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing


def link_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginLink:
    email: str
    rd: str
    binding_hash: str | None


async def create_link(
    engine: AsyncEngine,
    *,
    email: str,
    rd: str,
    ttl: float,
    now: float,
    client_ip: str,
    binding_hash: str | None = None,
) -> str:
    """A new single-use token for ``email``; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    async with writing(engine) as conn:
        await conn.execute(
            insert(tables.login_links).values(
                token_hash=link_hash(token),
                email=email,
                rd=rd,
                created_at=now,
                expires_at=now + ttl,
                client_ip=client_ip,
                binding_hash=binding_hash,
            )
        )
    return token


async def peek_link(engine: AsyncEngine, token: str, now: float) -> LoginLink | None:
    """The link if it is still usable, without consuming it (the confirm page's GET)."""
    c = tables.login_links.c
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(c.email, c.rd, c.binding_hash).where(
                    c.token_hash == link_hash(token), c.used_at.is_(None), c.expires_at >= now
                )
            )
        ).first()
    return LoginLink(row.email, row.rd, row.binding_hash) if row else None


async def consume_link(engine: AsyncEngine, token: str, now: float) -> LoginLink | None:
    """Use the link once: exactly one caller ever gets it back."""
    c = tables.login_links.c
    key = link_hash(token)
    async with writing(engine) as conn:
        used = await conn.execute(
            update(tables.login_links)
            .where(c.token_hash == key, c.used_at.is_(None), c.expires_at >= now)
            .values(used_at=now)
        )
        if used.rowcount != 1:
            return None
        row = (
            await conn.execute(select(c.email, c.rd, c.binding_hash).where(c.token_hash == key))
        ).one()
    return LoginLink(row.email, row.rd, row.binding_hash)
