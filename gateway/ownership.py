"""Ownership resolvers: object id → owning tenant. Fail closed (I4b).

Answers are cached per (resource type, id), the only inputs they depend on: found
owners for the resource's ``cache`` time, "not found" for its ``negative_cache`` time,
failures never. Concurrent lookups of one id share one call (single-flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import quote

import aiohttp
from cachetools import TTLCache
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.model import (
    HttpOwner,
    NotFound,
    ObjectRef,
    Owned,
    OwnerAnswer,
    RegistryOwner,
    ResolvedRef,
    ResolverFailed,
    ResourceDef,
    SqlOwner,
    UpstreamDef,
)
from gateway.objects import pointer_values

log = logging.getLogger("gatehold.ownership")
Key = tuple[str, str]


class RegistryStore(Protocol):
    async def get_owner(self, resource_type: str, object_id: str) -> str | None: ...

    async def set_owner(self, resource_type: str, object_id: str, tenant: str) -> None: ...


class Ownership:
    """Resolves the owners of object references, cached and single-flight."""

    def __init__(
        self,
        *,
        resources: Mapping[str, ResourceDef],
        upstreams: Mapping[str, UpstreamDef],
        registry: RegistryStore,
        http_timeout: float = 5.0,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resources = dict(resources)
        self._upstreams = dict(upstreams)
        self._registry = registry
        self._timeout = http_timeout
        self._clock = clock
        # value: (answer, expires at); the TTL bounds the longest entry, expiry is per entry
        longest = max((r.cache_seconds for r in resources.values()), default=60.0)
        self._cache: TTLCache[Key, tuple[OwnerAnswer, float]] = TTLCache(
            maxsize=cache_size, ttl=max(longest, 1.0), timer=clock
        )
        self._inflight: dict[Key, asyncio.Future[OwnerAnswer]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._sql: dict[str, AsyncEngine] = {}

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        for resource in self._resources.values():
            if isinstance(resource.owner, SqlOwner) and resource.owner.dsn not in self._sql:
                self._sql[resource.owner.dsn] = _read_only_engine(resource.owner.dsn)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        for engine in self._sql.values():
            await engine.dispose()

    async def resolve(self, refs: Sequence[ObjectRef], *, upstream: str) -> tuple[ResolvedRef, ...]:
        """The owner of every reference, in order. Never raises."""
        if len(refs) == 1:  # the common case: no task for gather to schedule and await
            return (ResolvedRef(refs[0], await self._answer(refs[0], upstream)),)
        answers = await asyncio.gather(*(self._answer(ref, upstream) for ref in refs))
        return tuple(ResolvedRef(ref, answer) for ref, answer in zip(refs, answers, strict=True))

    def learns_on_create(self, resource_type: str) -> bool:
        resource = self._resources.get(resource_type)
        return (
            resource is not None
            and isinstance(resource.owner, RegistryOwner)
            and (resource.owner.learn_on_create)
        )

    async def learn_created(self, *, resource_type: str, object_id: str, tenant: str) -> None:
        """Record the owner of an object created through the gateway."""
        await self._registry.set_owner(resource_type, object_id, tenant)
        self.invalidate(resource_type, object_id)

    def invalidate(self, resource_type: str, object_id: str) -> None:
        self._cache.pop((resource_type, object_id), None)

    async def _answer(self, ref: ObjectRef, upstream: str) -> OwnerAnswer:
        key = (ref.type, ref.id)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[OwnerAnswer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._lookup(ref, upstream)
            self._remember(key, answer)
            future.set_result(answer)
            return answer
        finally:
            if not future.done():
                future.set_result(ResolverFailed("lookup was cancelled"))
            del self._inflight[key]

    def _remember(self, key: Key, answer: OwnerAnswer) -> None:
        resource = self._resources[key[0]]
        if isinstance(answer, Owned):
            self._cache[key] = (answer, self._clock() + resource.cache_seconds)
        elif isinstance(answer, NotFound):
            self._cache[key] = (answer, self._clock() + resource.negative_cache_seconds)

    async def _lookup(self, ref: ObjectRef, upstream: str) -> OwnerAnswer:
        resource = self._resources.get(ref.type)
        if resource is None:
            return ResolverFailed(f"no resource type {ref.type!r} in the rules")
        try:
            match resource.owner:
                case HttpOwner() as owner:
                    return await self._http_lookup(owner, ref, upstream)
                case SqlOwner() as owner:
                    return await self._sql_lookup(owner, ref, resource)
                case RegistryOwner():
                    tenant = await self._registry.get_owner(ref.type, ref.id)
                    return Owned(tenant) if tenant else NotFound()
        except Exception as error:  # fail closed on anything at all
            log.warning("owner lookup failed for %s %s: %r", ref.type, ref.id, error)
            return ResolverFailed(type(error).__name__)

    async def _http_lookup(self, owner: HttpOwner, ref: ObjectRef, upstream: str) -> OwnerAnswer:
        base = self._upstreams[owner.upstream or upstream].url
        url = owner.url.replace("{upstream}", base).replace("{id}", quote(ref.id, safe=""))
        assert self._http is not None, "Ownership.start() was not awaited"  # noqa: S101
        async with self._http.request(owner.method, url, allow_redirects=False) as response:
            if response.status in (404, 410):
                return NotFound()
            if response.status != 200:
                return ResolverFailed(f"lookup answered {response.status}")
            document = await response.json(content_type=None)
        values = pointer_values(document, owner.tenant_field)
        if len(values) != 1 or not isinstance(values[0], str) or not values[0]:
            return ResolverFailed("lookup answer has no tenant")
        return Owned(values[0])

    async def _sql_lookup(
        self, owner: SqlOwner, ref: ObjectRef, resource: ResourceDef
    ) -> OwnerAnswer:
        engine = self._sql[owner.dsn]
        value: int | str = int(ref.id) if resource.id_type == "int" else ref.id
        async with engine.connect() as conn:
            row = (await conn.execute(text(owner.query), {"id": value})).first()
            await conn.rollback()
        if row is None:
            return NotFound()
        tenant = row[0]
        return Owned(str(tenant)) if tenant else ResolverFailed("owner column is empty")


def _read_only_engine(dsn: str) -> AsyncEngine:
    """An engine that cannot write: SQLite opened with ``mode=ro``; others as given."""
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite" and url.database:
        path = quote(url.database)
        return create_async_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    return create_async_engine(url)
