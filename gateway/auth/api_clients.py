"""Credentials of partners' systems: gateway API keys and bearer JWTs from a trusted issuer.

Both become an ordinary ``Principal`` bound to one tenant and role, so they pass the
same policy and audit as people do. Lookups are cached briefly; revoked keys are
noticed by polling the store (woken by the change feed on PostgreSQL), like sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

import aiohttp
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.jwks import JwksCache
from gateway.auth.revocations import Revocations, Woken, evict_revoked
from gateway.config.durations import parse_duration
from gateway.config.settings import BearerSettings
from gateway.errors import StoreUnavailable
from gateway.model import AuthMethod, Membership, Principal
from gateway.store import api_keys as key_store
from gateway.store.notify import ChangeFeed, stop_task

log = logging.getLogger("gatehold.api_clients")


USE_EVERY = 60.0
"""A key's last use is written at most once a minute (by this process, and in the store)."""


class ApiKeys:
    """Resolves ``ghk_…`` keys to principals, and notes when each was last used.

    Noting a use costs a request one dictionary lookup; the uses are written in one
    transaction by the revocation poll, at most once a minute per key.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 2.0,
        use_every: float = USE_EVERY,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._cache: TTLCache[str, Principal | None] = TTLCache(50_000, ttl=cache_seconds)
        self._use_every = use_every
        self._noted: dict[str, float] = {}
        """When this process last noted each key's use (by key hash)."""
        self._used: dict[str, float] = {}
        """Uses noted but not yet written."""
        self._poller: asyncio.Task[None] | None = None
        self.revocations = Revocations()
        """Told the hashes of keys revoked (by any process)."""
        self._woken = Woken(key_store.REVOKED)

    def follow(self, feed: ChangeFeed) -> None:
        """Poll for revoked keys as soon as ``feed`` hears of one."""
        self._woken.follow(feed)

    async def start(self, *, poll_seconds: float = 0.5) -> None:
        """Evict keys other processes revoke, within a poll."""
        self._poller = asyncio.create_task(
            evict_revoked(
                functools.partial(key_store.revoked_since, self._engine),
                self._cache,
                poll_seconds=poll_seconds,
                clock=self._clock,
                on_revoked=self.revocations.notify,
                after_each=self._write_used_safely,
                woken=self._woken,
            )
        )

    async def close(self) -> None:
        await stop_task(self._poller)
        await self._write_used_safely()

    async def principal(self, key: str) -> Principal | None:
        if not key.startswith(key_store.PREFIX) or len(key) > 100:
            return None
        hashed = key_store.key_hash(key)  # the cache is keyed like the revocations
        if hashed in self._cache:
            principal = self._cache[hashed]
        else:
            row = await key_store.find_key(self._engine, key)
            principal = None
            # An admin key administers through the admin API; upstream traffic refuses it.
            if row is not None and not row.admin and row.live(self._clock()):
                principal = key_principal(row)
            self._cache[hashed] = principal
        if principal is not None:
            self._note_use(hashed)
        return principal

    def _note_use(self, hashed: str) -> None:
        now = self._clock()
        if now - self._noted.get(hashed, -self._use_every) >= self._use_every:
            self._noted[hashed] = now
            self._used[hashed] = now

    async def _write_used_safely(self) -> None:
        # A lost write only makes "last used" older than it is: nothing is decided by it.
        used, self._used = self._used, {}
        if not used:
            return
        cutoff = self._clock() - self._use_every
        self._noted = {h: t for h, t in self._noted.items() if t > cutoff}
        with contextlib.suppress(StoreUnavailable):
            await key_store.record_use(self._engine, used, every=self._use_every)


def key_principal(row: key_store.ApiKeyRow) -> Principal:
    """The principal a live key is: its one tenant and role (also what simulate uses)."""
    return Principal(
        user_id=f"apikey:{row.id}",
        email=f"apikey:{row.label or row.id}",
        memberships=(Membership(row.tenant, row.role),),
        auth_method=AuthMethod.API_KEY,
        auth_time=row.created_at,
        active_tenant=row.tenant,
        expires_at=row.expires_at,
    )


class BearerTokens:
    """Verifies JWTs from one configured issuer against its JWKS (rotation-aware)."""

    def __init__(self, settings: BearerSettings) -> None:
        self._settings = settings
        self._leeway = parse_duration(settings.leeway)
        self._http: aiohttp.ClientSession | None = None
        self._keys = JwksCache(
            self._jwks_url,
            http=self._client,
            refetch_after=parse_duration(settings.jwks_refetch_after),
        )

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _jwks_url(self) -> str:
        return self._settings.jwks_url

    def _client(self) -> aiohttp.ClientSession:
        assert self._http is not None, "BearerTokens.start() was not awaited"  # noqa: S101
        return self._http

    async def principal(self, token: str) -> Principal | None:
        s = self._settings
        claims = await self._keys.verify(
            token,
            algorithms=s.algorithms,
            audience=s.audience,
            issuer=s.issuer,
            leeway=self._leeway,
        )
        if isinstance(claims, str):
            return None
        tenant, role = claims.get(s.tenant_claim), claims.get(s.role_claim)
        if not isinstance(tenant, str) or not isinstance(role, str) or not tenant or not role:
            return None
        label = str(claims.get(s.subject_label_claim) or claims["sub"])
        return Principal(
            user_id=f"jwt:{claims['sub']}",
            email=f"client:{label}",
            memberships=(Membership(tenant, role),),
            auth_method=AuthMethod.BEARER_JWT,
            auth_time=float(claims["iat"]),
            active_tenant=tenant,
            expires_at=float(claims["exp"]) if isinstance(claims.get("exp"), int | float) else None,
        )
