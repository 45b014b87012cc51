"""Server-side sessions (I7): only the SHA-256 of a session id is ever stored."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.model import Membership
from gateway.store import tables
from gateway.store.engine import reading, writing
from gateway.store.notify import REVOCATIONS, notify
from gateway.store.tenants import inactive_tenants
from gateway.store.users import UserRow

TOKEN_BYTES = 32
"""256 random bits per session id."""
REVOKED = "sessions"
"""The ``gatehold_revocations`` payload of a session revocation."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A stored session; ``id_hash`` is the SHA-256 hex of the cookie's token."""

    id_hash: str
    user_id: int
    created_at: float
    last_seen: float
    auth_time: float
    """Last interactive authentication (step-up, I6)."""
    auth_method: str
    idle_timeout: float
    """Seconds of inactivity after which the session ends."""
    absolute_expiry: float
    """Unix time at which the session ends whatever happens."""
    active_tenant: str | None
    client_ip: str
    user_agent: str
    revoked_at: float | None
    mfa_time: float | None = None
    """When a second factor was last shown in this session (``None``: one factor)."""


def token_hash(token: str) -> str:
    """SHA-256 hex of a session token: the only form the store keeps."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def session_is_live(row: SessionRow, now: float) -> bool:
    """Not revoked, used within its idle timeout and before its absolute expiry."""
    return (
        row.revoked_at is None
        and now <= row.absolute_expiry
        and now - row.last_seen <= row.idle_timeout
    )


async def create_session(
    engine: AsyncEngine,
    *,
    user_id: int,
    auth_method: str,
    auth_time: float,
    idle_timeout: float,
    absolute_timeout: float,
    client_ip: str,
    user_agent: str,
    active_tenant: str | None = None,
    now: float,
    signs_in: bool = False,
    mfa_time: float | None = None,
) -> tuple[str, str]:
    """Store a new session; returns ``(token, id_hash)``. The token goes in the cookie only.

    ``signs_in``: the person just proved who they are (not a session made for a script):
    their first and last sign-in are recorded in the same transaction.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    id_hash = token_hash(token)
    async with writing(engine) as conn:
        await conn.execute(
            tables.sessions.insert().values(
                id_hash=id_hash,
                user_id=user_id,
                created_at=now,
                last_seen=now,
                auth_time=auth_time,
                auth_method=auth_method,
                idle_timeout=idle_timeout,
                absolute_expiry=now + absolute_timeout,
                active_tenant=active_tenant,
                client_ip=client_ip,
                user_agent=user_agent[:512],
                mfa_time=mfa_time,
            )
        )
        if signs_in:
            u = tables.users.c
            await conn.execute(
                update(tables.users)
                .where(u.id == user_id)
                .values(first_login_at=func.coalesce(u.first_login_at, now), last_login_at=now)
            )
    return token, id_hash


async def get_session(engine: AsyncEngine, id_hash: str) -> SessionRow | None:
    """The stored session, live or not, or ``None``."""
    async with reading(engine) as conn:
        query = select(tables.sessions).where(tables.sessions.c.id_hash == id_hash)
        row = (await conn.execute(query)).first()
    return None if row is None else _session_row(row)


async def get_session_and_user(
    engine: AsyncEngine, id_hash: str
) -> tuple[SessionRow, UserRow] | None:
    """The session with its user and every membership in one query: the cache-miss path."""
    s, u, m = tables.sessions, tables.users, tables.memberships
    query = (
        select(
            s,
            u.c.email,
            u.c.display_name,
            u.c.superadmin,
            u.c.active,
            u.c.created_at.label("user_created_at"),
            m.c.tenant.label("member_tenant"),
            m.c.role.label("member_role"),
        )
        .select_from(
            s.join(u, u.c.id == s.c.user_id).outerjoin(
                # A membership in a deactivated tenant grants nothing: it is not loaded.
                m,
                and_(m.c.user_id == s.c.user_id, m.c.tenant.not_in(inactive_tenants())),
            )
        )
        .where(s.c.id_hash == id_hash)
        .order_by(m.c.created_at, m.c.tenant, m.c.role)
    )
    async with reading(engine) as conn:
        rows = (await conn.execute(query)).all()
    if not rows:
        return None
    first = rows[0]
    user = UserRow(
        id=int(first.user_id),
        email=first.email,
        display_name=first.display_name,
        superadmin=bool(first.superadmin),
        active=bool(first.active),
        created_at=float(first.user_created_at),
        memberships=tuple(
            Membership(row.member_tenant, row.member_role)
            for row in rows
            if row.member_tenant is not None
        ),
    )
    return _session_row(first), user


async def touch_session(engine: AsyncEngine, id_hash: str, now: float) -> None:
    """Record activity (restarts the idle timeout) on a session that is not revoked."""
    await touch_sessions(engine, {id_hash: now})


async def touch_sessions(engine: AsyncEngine, seen: Mapping[str, float]) -> None:
    """Record the last activity of many sessions in one transaction (never moves it back)."""
    if not seen:
        return
    s = tables.sessions.c
    statement = (
        update(tables.sessions)
        .where(
            s.id_hash == bindparam("hash"), s.revoked_at.is_(None), s.last_seen < bindparam("now")
        )
        .values(last_seen=bindparam("now"))
    )
    async with writing(engine) as conn:
        await conn.execute(statement, [{"hash": h, "now": t} for h, t in seen.items()])


async def set_active_tenant(engine: AsyncEngine, id_hash: str, tenant: str | None) -> bool:
    """Switch the tenant used for routes without an object; ``False`` if no live row."""
    s = tables.sessions.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.sessions)
            .where(s.id_hash == id_hash, s.revoked_at.is_(None))
            .values(active_tenant=tenant)
        )
    return result.rowcount > 0


async def revoke_session(engine: AsyncEngine, id_hash: str, now: float) -> bool:
    """End one session now; ``False`` if it was unknown or already revoked."""
    s = tables.sessions.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.sessions)
            .where(s.id_hash == id_hash, s.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount:
            await notify(conn, REVOCATIONS, REVOKED)
    return result.rowcount > 0


async def revoke_user_sessions(
    engine: AsyncEngine, user_id: int, now: float, *, keep: str | None = None
) -> int:
    """End every session of a user now but ``keep`` (an id hash); returns how many
    were still open."""
    s = tables.sessions.c
    ending = [s.user_id == user_id, s.revoked_at.is_(None)]
    if keep is not None:
        ending.append(s.id_hash != keep)
    async with writing(engine) as conn:
        result = await conn.execute(update(tables.sessions).where(*ending).values(revoked_at=now))
        if result.rowcount:
            await notify(conn, REVOCATIONS, REVOKED)
    return result.rowcount


async def revoked_since(engine: AsyncEngine, since: float) -> list[str]:
    """Hashes of the sessions revoked at or after ``since``: processes poll it to evict them."""
    s = tables.sessions.c
    async with reading(engine) as conn:
        rows = await conn.execute(select(s.id_hash).where(s.revoked_at >= since))
        return [str(row.id_hash) for row in rows]


async def list_user_sessions(
    engine: AsyncEngine, user_id: int, *, include_revoked: bool = False
) -> list[SessionRow]:
    """A user's sessions, newest first (for "your sessions" and admin views)."""
    s = tables.sessions.c
    query = select(tables.sessions).where(s.user_id == user_id)
    if not include_revoked:
        query = query.where(s.revoked_at.is_(None))
    async with reading(engine) as conn:
        rows = (await conn.execute(query.order_by(s.created_at.desc()))).all()
    return [_session_row(row) for row in rows]


async def delete_ended_sessions(engine: AsyncEngine, now: float, *, keep: float = 0.0) -> int:
    """Delete sessions revoked or past their absolute expiry more than ``keep`` seconds ago."""
    s = tables.sessions.c
    cutoff = now - keep
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.sessions.delete().where((s.absolute_expiry < cutoff) | (s.revoked_at < cutoff))
        )
    return result.rowcount


def _session_row(row: Row[Any]) -> SessionRow:
    return SessionRow(
        id_hash=row.id_hash,
        user_id=int(row.user_id),
        created_at=float(row.created_at),
        last_seen=float(row.last_seen),
        auth_time=float(row.auth_time),
        auth_method=row.auth_method,
        idle_timeout=float(row.idle_timeout),
        absolute_expiry=float(row.absolute_expiry),
        active_tenant=row.active_tenant,
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        revoked_at=None if row.revoked_at is None else float(row.revoked_at),
        mfa_time=None if row.mfa_time is None else float(row.mfa_time),
    )
