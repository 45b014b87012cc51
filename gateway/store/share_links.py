"""Share links in the store: the token is random and kept only as its SHA-256.

A row is read on every open and never cached, so a revocation (one ``UPDATE``) holds
on every replica from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing

TOKEN_BYTES = 32
"""256 random bits: a token can be neither guessed nor derived from another one."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class ShareRow:
    """One share link as stored (never the token itself)."""

    id: int
    route: str
    """The file route the path matched when the link was minted."""
    path: str
    """The canonical download path the link serves, and nothing else."""
    object_type: str
    object_id: str
    tenant: str
    """The object's owner when the link was minted: if it moves, the link dies."""
    recipient: str
    """The normalized email of the one person who may open it."""
    created_by: str
    """The minter's email: their access is checked again on every open."""
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None

    def live(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class NewShare:
    """What a minted link is bound to."""

    route: str
    path: str
    object_type: str
    object_id: str
    tenant: str
    recipient: str
    created_by: str


def _columns() -> Select[Any]:
    c = tables.share_links.c
    return select(
        c.id,
        c.route,
        c.path,
        c.object_type,
        c.object_id,
        c.tenant,
        c.recipient,
        c.created_by,
        c.created_at,
        c.expires_at,
        c.revoked_at,
        c.revoked_by,
    )


async def create_share(
    engine: AsyncEngine, share: NewShare, *, now: float, ttl: float
) -> tuple[ShareRow, str]:
    """Store a new link; returns its row and its token (shown once, never stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with writing(engine) as conn:
        result = await conn.execute(
            insert(tables.share_links).values(
                token_hash=token_hash(token),
                route=share.route,
                path=share.path,
                object_type=share.object_type,
                object_id=share.object_id,
                tenant=share.tenant,
                recipient=share.recipient,
                created_by=share.created_by,
                created_at=now,
                expires_at=now + ttl,
            )
        )
    (share_id,) = result.inserted_primary_key or (0,)
    row = ShareRow(
        int(share_id),
        share.route,
        share.path,
        share.object_type,
        share.object_id,
        share.tenant,
        share.recipient,
        share.created_by,
        now,
        now + ttl,
        None,
        None,
    )
    return row, token


async def _one(engine: AsyncEngine, condition: ColumnElement[bool]) -> ShareRow | None:
    async with reading(engine) as conn:
        row = (await conn.execute(_columns().where(condition))).first()
    return ShareRow(*row) if row else None


async def find_share(engine: AsyncEngine, token: str) -> ShareRow | None:
    """The link a token opens, live or not; ``None`` for a token nobody minted."""
    return await _one(engine, tables.share_links.c.token_hash == token_hash(token))


async def get_share(engine: AsyncEngine, share_id: int) -> ShareRow | None:
    return await _one(engine, tables.share_links.c.id == share_id)


async def list_shares(
    engine: AsyncEngine,
    *,
    now: float,
    created_by: str | None = None,
    tenants: frozenset[str] | None = None,
) -> list[ShareRow]:
    """Live links, newest first: those ``created_by`` minted or of ``tenants``
    (either matches); every live link when both are ``None``."""
    c = tables.share_links.c
    query = _columns().where(c.revoked_at.is_(None), c.expires_at > now)
    scopes: list[ColumnElement[bool]] = []
    if created_by is not None:
        scopes.append(c.created_by == created_by)
    if tenants is not None:
        scopes.append(c.tenant.in_(sorted(tenants)))
    if scopes:
        query = query.where(or_(*scopes))
    async with reading(engine) as conn:
        rows = (await conn.execute(query.order_by(c.id.desc()))).all()
    return [ShareRow(*row) for row in rows]


async def revoke_share(engine: AsyncEngine, share_id: int, *, now: float, by: str) -> bool:
    """Revoke a link that is not yet revoked; ``False`` if it already was (or is none)."""
    c = tables.share_links.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.share_links)
            .where(and_(c.id == share_id, c.revoked_at.is_(None)))
            .values(revoked_at=now, revoked_by=by)
        )
    return result.rowcount > 0


async def live_for(engine: AsyncEngine, recipient: str, now: float) -> bool:
    """Whether any live link is for ``recipient``: such a person may sign in without
    an account (``MagicLinks``), to open it."""
    c = tables.share_links.c
    query = (
        select(c.id)
        .where(c.recipient == recipient, c.revoked_at.is_(None), c.expires_at > now)
        .limit(1)
    )
    async with reading(engine) as conn:
        return (await conn.execute(query)).first() is not None
