"""Sign-ins made outside the login page: ``gatehold session mint``, the demo's printed
cookies and its one-click sign-in links.

Both the command line and the demo use this module; neither imports the other.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry, writer_for
from gateway.auth.magic_link import CONFIRM_PATH
from gateway.auth.sessions import SessionManager
from gateway.config.settings import Settings
from gateway.identity import COOKIE_NAME
from gateway.model import AuthMethod
from gateway.store import login_links
from gateway.store import users as user_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.users import UserRow


@asynccontextmanager
async def _opened_store(settings: Settings) -> AsyncIterator[_Opened]:
    """The store (migrated) and a started audit writer, closed afterwards."""
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        writer = writer_for(settings, engine)
        await writer.start()
        try:
            yield _Opened(engine, writer)
        finally:
            await writer.close()
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class _Opened:
    engine: AsyncEngine
    audit: AuditWriter

    async def active_user(self, email: str) -> UserRow | None:
        user = await user_store.get_user_by_email(self.engine, email)
        return user if user is not None and user.active else None


async def mint_cookie(settings: Settings, email: str, *, tenant: str | None = None) -> str | None:
    """A ``Cookie:`` value for a new session of ``email``, audited before it is returned.

    ``None`` when there is no active person with that email (nothing is created).
    """
    async with _opened_store(settings) as opened:
        user = await opened.active_user(email)
        if user is None:
            return None
        manager = SessionManager(
            opened.engine,
            idle_timeout=settings.session_idle_timeout,
            absolute_timeout=settings.session_absolute_timeout,
        )
        token, id_hash = await manager.create(
            user_id=user.id,
            auth_method=AuthMethod.CLI_MINT,
            client_ip="cli",
            user_agent="gatehold session mint",
            active_tenant=tenant,
        )
        await opened.audit.begin(
            event_entry("session-minted", actor="cli", subject=user.email, session=id_hash)
        )
        return f"{COOKIE_NAME}={token}"


async def mint_sign_in_link(
    settings: Settings, email: str, *, rd: str, valid_for: float, actor: str
) -> str | None:
    """A single-use sign-in link for ``email`` that lands on ``rd``, audited first.

    The link opens the usual "Confirm sign-in" page: one click signs in. ``None`` when
    there is no active person with that email (nothing is created).
    """
    async with _opened_store(settings) as opened:
        user = await opened.active_user(email)
        if user is None:
            return None
        await opened.audit.begin(
            event_entry("sign-in-link-minted", actor=actor, subject=user.email, rd=rd)
        )
        token = await login_links.create_link(
            opened.engine,
            email=user.email,
            rd=rd,
            ttl=valid_for,
            now=time.time(),
            client_ip=actor,
        )
    public_url = settings.server.public_url.rstrip("/")
    return f"{public_url}{CONFIRM_PATH}?token={quote(token)}"
