"""Users and their (tenant, role) memberships."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.model import Membership
from gateway.store import tables
from gateway.store.engine import insert_ignoring_duplicates, reading, writing


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as stored, with every membership in grant order."""

    id: int
    email: str
    """Lower-cased login email."""
    display_name: str
    superadmin: bool
    active: bool
    created_at: float
    memberships: tuple[Membership, ...]
    invited_at: float | None = None
    """When an admin last invited them, until they first signed in."""
    invited_by: str = ""
    """Which admin invited them."""
    first_login_at: float | None = None
    """Their first interactive sign-in (magic link or SSO); ``None`` if they never did."""
    last_login_at: float | None = None
    """Their latest interactive sign-in."""
    last_active: float | None = None
    """Their latest sign-in or request seen by a session (filled by ``list_users``)."""

    @property
    def state(self) -> str:
        """``deactivated``, ``invited`` (not signed in since the invite) or ``active``."""
        if not self.active:
            return "deactivated"
        if self.invited_at is not None and self.first_login_at is None:
            return "invited"
        return "active"


async def add_user(
    engine: AsyncEngine,
    email: str,
    *,
    memberships: Sequence[Membership],
    superadmin: bool = False,
    display_name: str = "",
) -> int:
    """Create the user (or find them) and grant ``memberships``; returns the user id.

    Idempotent: an existing user keeps what they hold and gains what is new. ``superadmin``
    is only ever raised here, and a non-empty ``display_name`` replaces the old one.
    """
    now = time.time()
    async with writing(engine) as conn:
        await conn.execute(
            insert_ignoring_duplicates(conn, tables.users, ("email",)).values(
                email=email.strip().lower(),
                display_name=display_name,
                superadmin=superadmin,
                active=True,
                created_at=now,
            )
        )
        user_id = await _user_id(conn, email)
        changes: dict[str, object] = {}
        if superadmin:
            changes["superadmin"] = True
        if display_name:
            changes["display_name"] = display_name
        if changes:
            await conn.execute(
                update(tables.users).where(tables.users.c.id == user_id).values(**changes)
            )
        await _grant(conn, user_id, memberships, now)
    return user_id


async def create_user(
    engine: AsyncEngine, email: str, *, memberships: Sequence[Membership]
) -> int | None:
    """Create a new user with ``memberships``; ``None`` if the email is already someone's.

    Unlike ``add_user`` this never finds and extends an existing person: provisioning
    from a claim must not hand that person's account to whoever made the claim.
    """
    now = time.time()
    async with writing(engine) as conn:
        created = await conn.execute(
            insert_ignoring_duplicates(conn, tables.users, ("email",))
            .values(
                email=email.strip().lower(),
                display_name="",
                superadmin=False,
                active=True,
                created_at=now,
            )
            .returning(tables.users.c.id)
        )
        user_id = created.scalar()
        if user_id is None:
            return None
        await _grant(conn, int(user_id), memberships, now)
    return int(user_id)


async def _grant(
    conn: AsyncConnection, user_id: int, memberships: Sequence[Membership], now: float
) -> None:
    # A microsecond apart, so reading them back by created_at keeps the grant order.
    for offset, grant in enumerate(memberships):
        await conn.execute(
            insert_ignoring_duplicates(
                conn, tables.memberships, ("user_id", "tenant", "role")
            ).values(
                user_id=user_id,
                tenant=grant.tenant,
                role=grant.role,
                created_at=now + offset * 1e-6,
            )
        )


async def _user_id(conn: AsyncConnection, email: str) -> int:
    query = select(tables.users.c.id).where(tables.users.c.email == email.strip().lower())
    return int((await conn.execute(query)).scalar_one())


async def get_user_by_email(engine: AsyncEngine, email: str) -> UserRow | None:
    """The user with this email (any case), or ``None``."""
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(tables.users).where(tables.users.c.email == email.strip().lower())
            )
        ).first()
        return None if row is None else await _with_memberships(conn, row)


async def get_user(engine: AsyncEngine, user_id: int) -> UserRow | None:
    """The user with this id, or ``None``."""
    async with reading(engine) as conn:
        row = (await conn.execute(select(tables.users).where(tables.users.c.id == user_id))).first()
        return None if row is None else await _with_memberships(conn, row)


async def list_users(engine: AsyncEngine) -> list[UserRow]:
    """Every user, ordered by email, with their last activity."""
    s = tables.sessions.c
    seen = select(s.user_id, func.max(s.last_seen).label("last_seen")).group_by(s.user_id)
    async with reading(engine) as conn:
        rows = (await conn.execute(select(tables.users).order_by(tables.users.c.email))).all()
        grants = (await conn.execute(_membership_query())).all()
        last_seen = {row.user_id: float(row.last_seen) for row in await conn.execute(seen)}
    held: dict[int, list[Membership]] = {}
    for grant in grants:
        held.setdefault(grant.user_id, []).append(Membership(grant.tenant, grant.role))
    return [_user_row(row, held.get(row.id, []), last_seen=last_seen.get(row.id)) for row in rows]


async def mark_invited(engine: AsyncEngine, user_id: int, *, by: str, now: float) -> bool:
    """Record an invite; ``False`` (nothing changes) once the person has signed in."""
    u = tables.users.c
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.users)
            .where(u.id == user_id, u.first_login_at.is_(None))
            .values(invited_at=now, invited_by=by)
        )
    return result.rowcount > 0


async def set_active(engine: AsyncEngine, user_id: int, active: bool) -> bool:
    """Activate or deactivate a user; ``False`` if there is no such user.

    Deactivation does not end sessions by itself: callers revoke them too (I7).
    """
    async with writing(engine) as conn:
        result = await conn.execute(
            update(tables.users).where(tables.users.c.id == user_id).values(active=active)
        )
    return result.rowcount > 0


async def remove_membership(engine: AsyncEngine, user_id: int, membership: Membership) -> bool:
    """Withdraw one (tenant, role) grant; ``False`` if the user did not hold it."""
    async with writing(engine) as conn:
        result = await conn.execute(
            tables.memberships.delete().where(
                tables.memberships.c.user_id == user_id,
                tables.memberships.c.tenant == membership.tenant,
                tables.memberships.c.role == membership.role,
            )
        )
    return result.rowcount > 0


async def set_tenant_role(engine: AsyncEngine, user_id: int, tenant: str, role: str) -> None:
    """Make ``role`` the user's only role in ``tenant``, in one transaction (never both)."""
    async with writing(engine) as conn:
        await conn.execute(
            tables.memberships.delete().where(
                tables.memberships.c.user_id == user_id,
                tables.memberships.c.tenant == tenant,
                tables.memberships.c.role != role,
            )
        )
        await _grant(conn, user_id, [Membership(tenant, role)], time.time())


def _membership_query() -> Select[Any]:
    return select(tables.memberships).order_by(
        tables.memberships.c.created_at, tables.memberships.c.tenant, tables.memberships.c.role
    )


async def _with_memberships(conn: AsyncConnection, row: Row[Any]) -> UserRow:
    grants = await conn.execute(_membership_query().where(tables.memberships.c.user_id == row.id))
    return _user_row(row, [Membership(g.tenant, g.role) for g in grants])


def _user_row(
    row: Row[Any], held: Sequence[Membership], *, last_seen: float | None = None
) -> UserRow:
    last_login = _time(row.last_login_at)
    return UserRow(
        id=int(row.id),
        email=row.email,
        display_name=row.display_name,
        superadmin=bool(row.superadmin),
        active=bool(row.active),
        created_at=float(row.created_at),
        memberships=tuple(held),
        invited_at=_time(row.invited_at),
        invited_by=row.invited_by,
        first_login_at=_time(row.first_login_at),
        last_login_at=last_login,
        last_active=max((t for t in (last_login, last_seen) if t is not None), default=None),
    )


def _time(value: Any) -> float | None:
    return None if value is None else float(value)
