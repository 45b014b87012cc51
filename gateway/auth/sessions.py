"""Server-side sessions (I7): hashed ids, idle and absolute timeouts, revocation.

The hot path never reads the database for a known session: principals are cached,
keyed on the session hash, and concurrent requests of one session that miss the cache
share one load. Activity is recorded again once the last record is older than a tenth
of the session's idle timeout (a minute at most), so a session in use never looks idle,
however short the timeout; and a session this process believes idle is read again
before it is refused, since another process may have served it meanwhile. Revocation
in this process evicts at once; every process also polls the store twice a second
for the sessions revoked lately and evicts exactly those (on PostgreSQL the change feed
wakes that poll as soon as the revocation commits), so a logout, a deactivation or a
membership change (all of which revoke) ends the session everywhere within a second.
The cache's own lifetime is only a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.revocations import Revocations, Woken, evict_revoked
from gateway.errors import StoreUnavailable
from gateway.model import GLOBAL_TENANT, AuthMethod, Principal
from gateway.store import sessions as session_store
from gateway.store.notify import ChangeFeed, stop_task

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
SIGN_INS = frozenset(
    {AuthMethod.MAGIC_LINK, AuthMethod.OIDC, AuthMethod.PASSWORD, AuthMethod.PASSKEY}
)
"""How a person proves who they are interactively; a minted session proves nothing."""


def hash_token(token: str) -> str:
    """The only form of a session id the store ever sees."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    idle_timeout: float
    absolute_expiry: float
    last_seen: float


class SessionManager:
    """Creates, resolves and revokes sessions."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        idle_timeout: float,
        absolute_timeout: float,
        cache_seconds: float = 300.0,
        touch_every: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self._touch_every = touch_every
        self._clock = clock
        self._cache: TTLCache[str, _Cached] = TTLCache(maxsize=200_000, ttl=cache_seconds)
        self._loading: dict[str, asyncio.Future[_Cached | None]] = {}
        self._seen: dict[str, float] = {}
        """Sessions whose last activity is newer than the store's: written in batches."""
        self._poller: asyncio.Task[None] | None = None
        self.revocations = Revocations()
        """Told the hashes of sessions revoked here or by other processes."""
        self._woken = Woken(session_store.REVOKED)

    def follow(self, feed: ChangeFeed) -> None:
        """Poll for revocations as soon as ``feed`` hears of one."""
        self._woken.follow(feed)

    async def start(self, *, poll_seconds: float = 0.5) -> None:
        """Watch for revocations made by other processes and evict those sessions."""
        self._poller = asyncio.create_task(
            evict_revoked(
                functools.partial(session_store.revoked_since, self.engine),
                self._cache,
                poll_seconds=poll_seconds,
                clock=self._clock,
                after_each=self._write_seen_safely,
                on_revoked=self.revocations.notify,
                woken=self._woken,
            )
        )

    async def close(self) -> None:
        await stop_task(self._poller)
        await self._write_seen_safely()

    async def _write_seen(self) -> None:
        seen, self._seen = self._seen, {}
        await session_store.touch_sessions(self.engine, seen)

    async def _write_seen_safely(self) -> None:
        # A lost write only makes the session look idle sooner elsewhere: fails safe.
        with contextlib.suppress(StoreUnavailable):
            await self._write_seen()

    def cached_sessions(self) -> int:
        """Live sessions this process has resolved within the cache period (cheap)."""
        self._cache.expire()
        return len(self._cache)

    async def principal(self, token: str) -> Principal | None:
        """The principal a session cookie stands for, or ``None`` if it is not live."""
        if not TOKEN_SHAPE.fullmatch(token):
            return None
        id_hash = hash_token(token)
        now = self._clock()
        cached = self._cache.get(id_hash)
        if cached is None:
            cached = await self._load_once(id_hash)
            if cached is None:
                return None
        if now > cached.absolute_expiry:
            self._cache.pop(id_hash, None)
            return None
        if now - cached.last_seen > cached.idle_timeout:
            # Idle here; another process may have seen it since: the store decides.
            self._cache.pop(id_hash, None)
            cached = await self._load_once(id_hash)
            if cached is None or now - cached.last_seen > cached.idle_timeout:
                self._cache.pop(id_hash, None)
                return None
        if now - cached.last_seen > min(self._touch_every, cached.idle_timeout / 10):
            # Written by the background task in one transaction with the others seen lately.
            self._seen[id_hash] = now
            self._cache[id_hash] = _Cached(
                cached.principal, cached.idle_timeout, cached.absolute_expiry, now
            )
        return cached.principal

    async def _load_once(self, id_hash: str) -> _Cached | None:
        """Load a session into the cache; concurrent callers for one session share the load."""
        loading = self._loading.get(id_hash)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[_Cached | None] = asyncio.get_running_loop().create_future()
        self._loading[id_hash] = future
        try:
            cached = await self._load(id_hash)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so an unshared failure is not logged twice
            raise
        finally:
            del self._loading[id_hash]
        if cached is not None:
            self._cache[id_hash] = cached
        future.set_result(cached)
        return cached

    async def _load(self, id_hash: str) -> _Cached | None:
        found = await session_store.get_session_and_user(self.engine, id_hash)
        if found is None:
            return None
        row, user = found
        if not session_store.session_is_live(row, self._clock()) or not user.active:
            return None
        tenants = [m.tenant for m in user.memberships if m.tenant != GLOBAL_TENANT]
        active = row.active_tenant if row.active_tenant in tenants else None
        principal = Principal(
            user_id=str(user.id),
            email=user.email,
            memberships=tuple(user.memberships),
            auth_method=AuthMethod(row.auth_method),
            auth_time=row.auth_time,
            session_hash=id_hash,
            active_tenant=active or (tenants[0] if tenants else None),
            superadmin=user.superadmin,
            expires_at=row.absolute_expiry,
            mfa_time=row.mfa_time,
        )
        return _Cached(principal, row.idle_timeout, row.absolute_expiry, row.last_seen)

    async def create(
        self,
        *,
        user_id: int,
        auth_method: AuthMethod,
        client_ip: str,
        user_agent: str,
        active_tenant: str | None = None,
        auth_time: float | None = None,
        mfa_time: float | None = None,
    ) -> tuple[str, str]:
        """A new session (a new id at every login, I7). Returns (token, id hash).

        A magic-link or SSO sign-in also records the person's first and last sign-in
        (an invited person becomes active); a session minted for a script does not.
        """
        now = self._clock()
        return await session_store.create_session(
            self.engine,
            user_id=user_id,
            auth_method=auth_method.value,
            auth_time=now if auth_time is None else auth_time,
            idle_timeout=self.idle_timeout,
            absolute_timeout=self.absolute_timeout,
            client_ip=client_ip,
            user_agent=user_agent,
            active_tenant=active_tenant,
            now=now,
            signs_in=auth_method in SIGN_INS,
            mfa_time=mfa_time,
        )

    async def revoke(self, id_hash: str) -> None:
        """End one session now."""
        await session_store.revoke_session(self.engine, id_hash, self._clock())
        self._cache.pop(id_hash, None)
        self.revocations.notify([id_hash])

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user now (deactivation, role or tenant change)."""
        return await self.revoke_user_except(user_id, None)

    async def revoke_user_except(self, user_id: int, keep: str | None) -> int:
        """End every session of a user but ``keep`` (the one changing their password)."""
        count = await session_store.revoke_user_sessions(
            self.engine, user_id, self._clock(), keep=keep
        )
        ended = [
            k for k, v in self._cache.items() if v.principal.user_id == str(user_id) and k != keep
        ]
        for key in ended:
            self._cache.pop(key, None)
        self.revocations.notify(ended)
        return count
