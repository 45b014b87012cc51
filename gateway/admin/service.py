"""The administration workflows, once, for every front end (the CLI today).

Each workflow validates, writes the store, ends the sessions of a person whose access
changed, and audits who did what with the state before and after. Errors a person can
act on come back as an ``AdminError`` value, never as an exception.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.active_rules import active_ruleset
from gateway.audit import AuditWriter, event_entry, writer_for
from gateway.auth.emails import normalize_email
from gateway.auth.magic_link import Invitation, MagicLinks
from gateway.auth.mail_outbox import build_outbox
from gateway.auth.mailer import Mailer
from gateway.config.settings import AccessRequestSettings, ReviewSettings, Settings
from gateway.model import GLOBAL_TENANT, Membership, RoleDef
from gateway.store import api_keys as key_store
from gateway.store import sessions as session_store
from gateway.store import sso_invites
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.api_keys import ApiKeyRow
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.sessions import SessionRow, session_is_live
from gateway.store.tenants import TenantRow
from gateway.store.users import UserRow
from gateway.tenant_ids import TENANT_ID

T = TypeVar("T")


ERROR_STATUS = {"invalid": 422, "not-found": 404, "forbidden": 403, "conflict": 409}
"""The HTTP status every front end answers an ``AdminError`` code with."""


@dataclass(frozen=True, slots=True)
class AdminError:
    """A refused admin action, with a message that says what to do."""

    message: str
    code: str = "invalid"
    problems: tuple[tuple[int | None, str], ...] = ()
    """Each problem of a refused text, as (line from 1 or ``None``, message)."""
    """``invalid``, ``not-found``, ``forbidden`` or ``conflict`` (the state forbids it:
    rules managed by the file)."""

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.code, 422)


@dataclass(frozen=True, slots=True)
class Admin:
    """Who acts: a superadmin manages everything, a tenant admin only their tenants."""

    name: str
    superadmin: bool = False
    tenants: frozenset[str] = frozenset()

    def manages(self, tenant: str) -> bool:
        return self.superadmin or (tenant != GLOBAL_TENANT and tenant in self.tenants)


CLI_ADMIN = Admin("cli", superadmin=True)
"""Whoever can run ``gatehold`` with the settings can read the store itself."""


@dataclass(slots=True)
class AdminContext:
    """What every workflow needs: the store, the audit writer, a clock and the actor."""

    engine: AsyncEngine
    audit: AuditWriter
    actor: Admin
    roles: frozenset[str]
    """The roles the active rules define."""
    clock: Callable[[], float] = time.time
    end_sessions: Callable[[int], Awaitable[int]] | None = None
    """Ends a user's sessions; inside a gateway process, the session manager's (which
    also evicts its cache at once). By default the store's, which other processes
    notice within their revocation poll."""
    end_session: Callable[[str], Awaitable[None]] | None = None
    """Ends one session by its id hash; inside a gateway process the session manager's."""
    global_roles: frozenset[str] = frozenset()
    """The roles of ``roles`` whose grants reach every tenant (``scope: global``)."""
    mailer: Mailer | None = None
    """Mails people about decisions on their access requests; ``None`` sends nothing."""
    sender: str = "Gatehold <gatehold@localhost>"
    access_requests: AccessRequestSettings = field(default_factory=AccessRequestSettings)
    reviews: ReviewSettings = field(default_factory=ReviewSettings)
    send_invite: Callable[[Invitation], Awaitable[bool]] | None = None
    """Stores a sign-in link for an invited person and mails it (``MagicLinks.invite``);
    without it, invites are refused."""
    settings: Settings | None = None
    """The gateway's settings: the rules lifecycle (``admin/rules.py``) reads where the
    rules come from, who manages them and the values of their ``${VAR}``s."""

    @classmethod
    def over(
        cls,
        engine: AsyncEngine,
        audit: AuditWriter,
        actor: Admin,
        roles: Mapping[str, RoleDef],
        **options: Any,
    ) -> AdminContext:
        """A context for the rules' ``roles``: their names, and which reach every tenant
        (so a tenant admin can never hand out a role that reaches beyond their tenant)."""
        return cls(
            engine, audit, actor, frozenset(roles), global_roles=global_roles(roles), **options
        )

    async def revoke_one(self, id_hash: str) -> bool:
        live = await session_store.revoke_session(self.engine, id_hash, self.clock())
        if live and self.end_session is not None:
            await self.end_session(id_hash)
        return live

    async def revoke(self, user_id: int) -> int:
        if self.end_sessions is not None:
            return await self.end_sessions(user_id)
        return await session_store.revoke_user_sessions(self.engine, user_id, self.clock())

    async def audit_event(self, kind: str, *, tenant: str = "", **data: Any) -> None:
        await self.audit.begin(event_entry(kind, actor=self.actor.name, tenant=tenant, **data))


def _present(row: T | None) -> T:
    """A row just written or read in this workflow; gone means something unexpected."""
    if row is None:
        raise LookupError("a row changed by this admin action vanished meanwhile")
    return row


def _grants(memberships: Iterable[Membership]) -> list[str]:
    return [f"{m.role}@{m.tenant}" for m in memberships]


def _forbidden_user(actor: Admin, user: UserRow) -> AdminError:
    return AdminError(f"{actor.name} does not administer {user.email}", "forbidden")


def _forbidden(actor: Admin, tenant: str) -> AdminError:
    return AdminError(f"{actor.name} does not administer tenant {tenant!r}", "forbidden")


# ---------------------------------------------------------------- tenants


async def usable_tenant(ctx: AdminContext, tenant: str) -> AdminError | None:
    """``None`` if ``tenant`` exists, is active and the actor administers it."""
    if tenant == GLOBAL_TENANT:
        return None if ctx.actor.superadmin else _forbidden(ctx.actor, tenant)
    unknown = await known_tenant(ctx.engine, tenant)
    if unknown is not None:
        return unknown
    return None if ctx.actor.manages(tenant) else _forbidden(ctx.actor, tenant)


async def known_tenant(engine: AsyncEngine, tenant: str) -> AdminError | None:
    """``None`` if ``tenant`` exists and is active (for commands that only read)."""
    row = await tenant_store.get_tenant(engine, tenant)
    if row is None:
        return AdminError(
            f"no tenant {tenant!r}; create it with `gatehold tenants add {tenant}`", "not-found"
        )
    if not row.active:
        return AdminError(f"tenant {tenant!r} is deactivated")
    return None


async def create_tenant(
    ctx: AdminContext, tenant_id: str, display_name: str = ""
) -> TenantRow | AdminError:
    if not ctx.actor.superadmin:
        return AdminError("only a superadmin creates tenants", "forbidden")
    if not TENANT_ID.fullmatch(tenant_id):
        return AdminError(
            f"tenant id {tenant_id!r}: use lower-case letters, digits and '-', like 'acme'"
        )
    name = display_name.strip() or tenant_id
    if not await tenant_store.create_tenant(
        ctx.engine, tenant_id, display_name=name, now=ctx.clock()
    ):
        return AdminError(f"tenant {tenant_id!r} exists already", "conflict")
    row = _present(await tenant_store.get_tenant(ctx.engine, tenant_id))
    await ctx.audit_event("tenant-created", tenant=tenant_id, before=None, after=_tenant_state(row))
    return row


async def list_tenants(ctx: AdminContext) -> list[TenantRow]:
    rows = await tenant_store.list_tenants(ctx.engine)
    return [row for row in rows if ctx.actor.manages(row.id)]


async def get_tenant(ctx: AdminContext, tenant_id: str) -> TenantRow | AdminError:
    """A tenant the actor administers (active or not); any other is as unknown as a
    missing one."""
    row = await tenant_store.get_tenant(ctx.engine, tenant_id)
    if row is None or not ctx.actor.manages(tenant_id):
        return AdminError(f"no tenant {tenant_id!r}", "not-found")
    return row


async def tenant_members(ctx: AdminContext, tenant_id: str) -> list[UserRow] | AdminError:
    """The people holding a role in a tenant the actor administers, ordered by email."""
    tenant = await get_tenant(ctx, tenant_id)
    if isinstance(tenant, AdminError):
        return tenant
    return [
        user
        for user in await user_store.list_users(ctx.engine)
        if any(m.tenant == tenant_id for m in user.memberships)
    ]


async def rename_tenant(
    ctx: AdminContext, tenant_id: str, display_name: str
) -> TenantRow | AdminError:
    before = await tenant_store.get_tenant(ctx.engine, tenant_id)
    if before is None:
        return AdminError(f"no tenant {tenant_id!r}", "not-found")
    if not ctx.actor.manages(tenant_id):
        return _forbidden(ctx.actor, tenant_id)
    if not display_name.strip():
        return AdminError("give the tenant a display name that is not empty")
    await tenant_store.update_tenant(ctx.engine, tenant_id, display_name=display_name.strip())
    after = _present(await tenant_store.get_tenant(ctx.engine, tenant_id))
    await ctx.audit_event(
        "tenant-renamed", tenant=tenant_id, before=_tenant_state(before), after=_tenant_state(after)
    )
    return after


async def deactivate_tenant(ctx: AdminContext, tenant_id: str) -> int | AdminError:
    """Deactivate a tenant: its memberships and keys grant nothing, its members' sessions
    end now. Returns the number of sessions ended."""
    if not ctx.actor.superadmin:
        return AdminError("only a superadmin deactivates tenants", "forbidden")
    before = await tenant_store.get_tenant(ctx.engine, tenant_id)
    if before is None:
        return AdminError(f"no tenant {tenant_id!r}", "not-found")
    if not before.active:
        return AdminError(f"tenant {tenant_id!r} is deactivated already", "conflict")
    await tenant_store.update_tenant(ctx.engine, tenant_id, active=False)
    ended = 0
    for user_id in await tenant_store.member_ids(ctx.engine, tenant_id):
        ended += await ctx.revoke(user_id)
    # The store already refuses its keys; revoking them also evicts every process's cache.
    now = ctx.clock()
    keys = [k.id for k in await key_store.list_keys(ctx.engine) if k.tenant == tenant_id]
    revoked = [k for k in keys if await key_store.revoke_key(ctx.engine, k, now)]
    after = _present(await tenant_store.get_tenant(ctx.engine, tenant_id))
    await ctx.audit_event(
        "tenant-deactivated",
        tenant=tenant_id,
        before=_tenant_state(before),
        after=_tenant_state(after),
        sessions=ended,
        api_keys_revoked=revoked,
    )
    return ended


def _tenant_state(row: TenantRow) -> dict[str, Any]:
    return {"display_name": row.display_name, "active": row.active}


# ---------------------------------------------------------------- users


def _address(email: str) -> str | AdminError:
    address = normalize_email(email)
    if address is None:
        return AdminError(f"{email!r} is not a plain email address like name@example.com")
    return address


async def _user(ctx: AdminContext, email: str) -> UserRow | AdminError:
    address = _address(email)
    if isinstance(address, AdminError):
        return address
    user = await user_store.get_user_by_email(ctx.engine, address)
    if user is None or not may_see(ctx.actor, user):
        return AdminError(f"no user {address!r}", "not-found")
    return user


async def get_user(ctx: AdminContext, email: str) -> UserRow | AdminError:
    """A person the actor administers; anyone else is as unknown as a missing person."""
    return await _user(ctx, email)


def may_see(actor: Admin, user: UserRow) -> bool:
    """Whether ``actor`` may see ``user``: a superadmin anyone, a tenant admin the members
    of a tenant they manage."""
    return actor.superadmin or any(actor.manages(m.tenant) for m in user.memberships)


def _whole_person(actor: Admin, user: UserRow) -> AdminError | None:
    """Refuse acting on a person as a whole (activity, sessions) unless every tenant they
    belong to is the actor's: a tenant admin must not reach into another tenant."""
    if actor.superadmin or (
        not user.superadmin and all(actor.manages(m.tenant) for m in user.memberships)
    ):
        return None
    return AdminError(f"{user.email} also belongs elsewhere; ask a superadmin", "forbidden")


def _user_state(user: UserRow) -> dict[str, Any]:
    return {
        "display_name": user.display_name,
        "state": user.state,
        "active": user.active,
        "superadmin": user.superadmin,
        "memberships": _grants(user.memberships),
    }


async def _check_grants(ctx: AdminContext, memberships: Sequence[Membership]) -> AdminError | None:
    problems = []
    for grant in memberships:
        if grant.role not in ctx.roles:
            known = ", ".join(sorted(ctx.roles))
            problems.append(f"unknown role {grant.role!r}; the rules define: {known}")
        elif grant.role in ctx.global_roles and not ctx.actor.superadmin:
            problems.append(f"{grant.role} reaches every tenant: only a superadmin grants it")
        refused = await usable_tenant(ctx, grant.tenant)
        if refused is not None:
            problems.append(refused.message)
    return AdminError("; ".join(problems)) if problems else None


async def add_user(
    ctx: AdminContext,
    email: str,
    memberships: Sequence[Membership] = (),
    *,
    superadmin: bool = False,
) -> UserRow | AdminError:
    """Add a person, or add memberships to an existing one (their sessions then end, so
    the next request is judged by what they hold now)."""
    address = _address(email)
    if isinstance(address, AdminError):
        return address
    if superadmin and not ctx.actor.superadmin:
        return AdminError("only a superadmin makes superadmins", "forbidden")
    if not memberships and not ctx.actor.superadmin:
        return AdminError("a tenant admin adds people with a membership in their tenant")
    refused = await _check_grants(ctx, memberships)
    if refused is not None:
        return refused
    before = await user_store.get_user_by_email(ctx.engine, address)
    await user_store.add_user(ctx.engine, address, memberships=memberships, superadmin=superadmin)
    after = _present(await user_store.get_user_by_email(ctx.engine, address))
    await ctx.audit_event(
        "user-added",
        subject=address,
        grants=_grants(memberships),
        before=None if before is None else _user_state(before),
        after=_user_state(after),
    )
    if before is not None and memberships:
        await _end_sessions(ctx, after, "membership-changed")
    return after


async def invite_sso(
    ctx: AdminContext, user: UserRow, *, provider: str, ttl: float
) -> AdminError | None:
    """Let the first sign-in through ``provider`` with this verified email become theirs;
    until then they are ``invited``."""
    if not may_see(ctx.actor, user):
        return _forbidden_user(ctx.actor, user)
    await sso_invites.invite(
        ctx.engine, email=user.email, provider=provider, user_id=user.id, ttl=ttl, now=ctx.clock()
    )
    await user_store.mark_invited(ctx.engine, user.id, by=ctx.actor.name, now=ctx.clock())
    await ctx.audit_event("sso-invited", subject=user.email, provider=provider, valid_for=ttl)
    return None


async def _end_sessions(ctx: AdminContext, user: UserRow, why: str) -> int:
    ended = await ctx.revoke(user.id)
    await ctx.audit_event("session-revoked", subject=user.email, sessions=ended, why=why)
    return ended


async def set_user_active(ctx: AdminContext, email: str, active: bool) -> int | AdminError:
    """Deactivate (every session ends now) or reactivate a person; returns sessions ended."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    refused = _whole_person(ctx.actor, user)
    if refused is not None:
        return refused
    if user.active == active:
        return AdminError(
            f"{user.email} is {'active' if active else 'deactivated'} already", "conflict"
        )
    await user_store.set_active(ctx.engine, user.id, active)
    ended = 0 if active else await ctx.revoke(user.id)
    after = _present(await user_store.get_user(ctx.engine, user.id))
    await ctx.audit_event(
        "user-reactivated" if active else "user-deactivated",
        subject=user.email,
        sessions=ended,
        before=_user_state(user),
        after=_user_state(after),
    )
    return ended


async def add_membership(
    ctx: AdminContext, email: str, tenant: str, role: str
) -> UserRow | AdminError:
    """Grant an existing person ``role`` in ``tenant``."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    grant = Membership(tenant, role)
    if grant in user.memberships:
        return AdminError(f"{user.email} holds {role} in {tenant} already", "conflict")
    return await add_user(ctx, user.email, [grant])


async def remove_membership(
    ctx: AdminContext, email: str, tenant: str, role: str
) -> UserRow | AdminError:
    """Withdraw one grant; the person's sessions end at once."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    if not ctx.actor.manages(tenant):
        return _forbidden(ctx.actor, tenant)
    grant = Membership(tenant, role)
    if grant not in user.memberships:
        held = ", ".join(_grants(user.memberships)) or "nothing"
        return AdminError(f"{user.email} does not hold {role} in {tenant} (holds: {held})")
    await user_store.remove_membership(ctx.engine, user.id, grant)
    return await _changed(ctx, user, "membership-removed", tenant)


async def change_role(
    ctx: AdminContext, email: str, tenant: str, role: str
) -> UserRow | AdminError:
    """Make ``role`` the person's only role in ``tenant``; their sessions end at once."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    held = [m for m in user.memberships if m.tenant == tenant]
    if not held:
        return AdminError(f"{user.email} is no member of {tenant}; add a membership instead")
    refused = await _check_grants(ctx, [Membership(tenant, role)])
    if refused is not None:
        return refused
    if held == [Membership(tenant, role)]:
        return AdminError(f"{user.email} holds {role} in {tenant} already", "conflict")
    await user_store.set_tenant_role(ctx.engine, user.id, tenant, role)
    return await _changed(ctx, user, "role-changed", tenant)


async def _changed(ctx: AdminContext, before: UserRow, kind: str, tenant: str) -> UserRow:
    after = _present(await user_store.get_user(ctx.engine, before.id))
    await ctx.audit_event(
        kind,
        tenant=tenant,
        subject=before.email,
        before=_user_state(before),
        after=_user_state(after),
    )
    await _end_sessions(ctx, after, kind)
    return after


async def list_sessions(ctx: AdminContext, email: str) -> list[SessionRow] | AdminError:
    """A person's open sessions, newest first."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    now = ctx.clock()
    rows = await session_store.list_user_sessions(ctx.engine, user.id)
    return [row for row in rows if session_is_live(row, now)]


SESSION_PREFIX = re.compile(r"[0-9a-f]{8,64}")
"""A session is named by a prefix of its id hash: at least 8 hex digits."""


async def end_user_sessions(
    ctx: AdminContext, email: str, session: str | None = None
) -> int | AdminError:
    """End one of a person's sessions (by id hash prefix) or all of them; returns how
    many ended. Each is refused on its next request."""
    user = await _user(ctx, email)
    if isinstance(user, AdminError):
        return user
    refused = _whole_person(ctx.actor, user)
    if refused is not None:
        return refused
    if session is None:
        return await _end_sessions(ctx, user, "admin-ended")
    prefix = session.strip().lower()
    if not SESSION_PREFIX.fullmatch(prefix):
        return AdminError(
            f"--session {session!r}: give at least 8 hex digits of an id `sessions list` shows"
        )
    now = ctx.clock()
    live = await session_store.list_user_sessions(ctx.engine, user.id)
    matches = [r for r in live if session_is_live(r, now) and r.id_hash.startswith(prefix)]
    if not matches:
        return AdminError(f"{user.email} has no open session {prefix}", "not-found")
    if len(matches) > 1:
        return AdminError(f"{prefix} names {len(matches)} sessions; give more digits")
    ended = int(await ctx.revoke_one(matches[0].id_hash))
    await ctx.audit_event(
        "session-revoked", subject=user.email, sessions=ended, session=prefix, why="admin-ended"
    )
    return ended


async def list_users(ctx: AdminContext, *, search: str = "") -> list[UserRow]:
    """The people the actor administers, ordered by email; with ``search``, only those
    whose email or display name contains it (any case)."""
    needle = search.strip().casefold()
    return [
        u
        for u in await user_store.list_users(ctx.engine)
        if may_see(ctx.actor, u)
        and (needle in u.email.casefold() or needle in u.display_name.casefold())
    ]


# ---------------------------------------------------------------- API keys


async def create_api_key(
    ctx: AdminContext, *, tenant: str, role: str, label: str, ttl: float, admin: bool = False
) -> tuple[int, str] | AdminError:
    """A key bound to one tenant and role; the key itself is returned only now.

    An ``admin`` key (a superadmin's to make) works only at the admin API, as admin of
    its tenant, or of every tenant for ``*``; the proxy refuses it for upstream traffic.
    """
    if admin and not ctx.actor.superadmin:
        return AdminError("only a superadmin creates admin keys", "forbidden")
    if tenant == GLOBAL_TENANT and not admin:
        return AdminError("an API key belongs to one tenant, not '*'")
    if ttl <= 0:
        return AdminError("a key's lifetime must be positive, e.g. 90d")
    refused = await _check_grants(ctx, [Membership(tenant, role)])
    if refused is not None:
        return refused
    key_id, key = await key_store.create_key(
        ctx.engine, tenant=tenant, role=role, label=label, ttl=ttl, now=ctx.clock(), admin=admin
    )
    await ctx.audit_event(
        "apikey-created",
        tenant=tenant,
        key_id=key_id,
        role=role,
        label=label,
        expires_in=ttl,
        before=None,
        after={"tenant": tenant, "role": role, "label": label, "admin": admin},
    )
    return key_id, key


async def list_api_keys(ctx: AdminContext) -> list[ApiKeyRow]:
    return [k for k in await key_store.list_keys(ctx.engine) if ctx.actor.manages(k.tenant)]


async def revoke_api_key(ctx: AdminContext, key_id: int) -> ApiKeyRow | AdminError:
    now = ctx.clock()
    row = next((k for k in await list_api_keys(ctx) if k.id == key_id), None)
    if row is None or not row.live(now):
        return AdminError(f"no live API key {key_id}", "not-found")
    if not await key_store.revoke_key(ctx.engine, key_id, now):
        return AdminError(f"no live API key {key_id}", "not-found")
    await ctx.audit_event(
        "apikey-revoked",
        tenant=row.tenant,
        key_id=key_id,
        before={"revoked": False},
        after={"revoked": True},
    )
    return row


def global_roles(roles: Mapping[str, RoleDef]) -> frozenset[str]:
    """The names of the roles whose grants reach every tenant."""
    return frozenset(name for name, role in roles.items() if role.scope_global)


@asynccontextmanager
async def admin_context(
    settings: Settings, actor: Admin = CLI_ADMIN
) -> AsyncIterator[AdminContext]:
    """A context over the store and audit writer ``settings`` name, closed afterwards.

    The roles are those of the active rules version (the file's before there is one).
    """
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        roles = await _active_roles(engine, settings)
        writer = writer_for(settings, engine)
        await writer.start()
        try:
            outbox = build_outbox(settings, engine, writer)
            mailer = outbox.mailer
            links = MagicLinks(
                engine=engine,
                outbox=outbox,
                audit=writer,
                settings=settings.auth.magic_link,
                ttl=settings.magic_link_ttl,
                public_url=settings.server.public_url,
                sender=settings.mail.sender,
            )
            yield AdminContext.over(
                engine,
                writer,
                actor,
                roles,
                send_invite=links.invite,
                mailer=mailer,
                sender=settings.mail.sender,
                access_requests=settings.access_requests,
                reviews=settings.reviews,
                settings=settings,
            )
        finally:
            await writer.close()
    finally:
        await engine.dispose()


async def _active_roles(engine: AsyncEngine, settings: Settings) -> Mapping[str, RoleDef]:
    return (await active_ruleset(engine, settings, {**os.environ, **settings.rules_env})).roles
