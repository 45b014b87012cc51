"""Ownership resolvers: object id → owning tenant. Fail closed (I4b).

Answers are cached per lookup exactly as it is made (``Lookup``): the resource type,
the id, and where the owner is read — the lookup URL with the route's upstream filled
in, the SQL query and its DSN, or the registry. One resource served by two upstreams
is therefore asked, and cached, once per upstream: an answer from one never stands in
for the other. Found owners are cached for the resource's ``cache`` time, "not found"
for its ``negative_cache`` time, failures never. Concurrent lookups of one ``Lookup``
share one call (single-flight). A registry answer is evicted when the registry changes
(here or, through the change feed, in another process: ``registry_sync.py``); a lookup
under way while anything is evicted answers its request but is not cached, since it
may have read the registry before the change.

Bounds: a request may name at most ``max_ids`` objects (more is refused before any
lookup), and at most ``max_concurrent`` lookups run at once in the process, so no
request can turn the gateway into a flood against the system of record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import aiohttp
from cachetools import TTLCache
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.jsonpointer import pointer_values
from gateway.model import (
    HttpOwner,
    NotFound,
    ObjectRef,
    Owned,
    OwnerAnswer,
    Reason,
    RegistryOwner,
    Rejection,
    ResolvedRef,
    ResolverFailed,
    ResourceDef,
    SqlOwner,
    UpstreamDef,
)

log = logging.getLogger("gatehold.ownership")
REGISTRY = "registry"
DEFAULT_MAX_IDS = 100
DEFAULT_MAX_CONCURRENT = 16
KEPT_AFTER_EXPIRY = 10.0
"""Seconds an answer stays in memory past its cache time, for ``cached(grace=…)``
readers only: a lookup never answers from an expired entry."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """One owner lookup exactly as it is made: the key of the cache and of single-flight."""

    resource: str
    object_id: str
    source: str
    """Where the owner is read: ``GET <url>`` with the id filled in, ``sql <dsn> <query>``,
    or ``registry``."""
    reads: str = ""
    """How the tenant is read from what ``source`` answers: the tenant field's pointer of
    an HTTP lookup, the id type of an SQL one (an ``int`` id is bound as a number). With
    ``source`` and the id it holds everything the answer depends on, so a rules version
    that reads another field never takes another version's answer for its own."""


class RegistryStore(Protocol):
    async def get_owner(self, resource_type: str, object_id: str) -> str | None: ...

    async def set_owner(self, resource_type: str, object_id: str, tenant: str) -> None: ...


class Ownership:
    """Resolves the owners of object references, cached, single-flight and bounded."""

    def __init__(
        self,
        *,
        resources: Mapping[str, ResourceDef],
        upstreams: Mapping[str, UpstreamDef],
        registry: RegistryStore,
        http_timeout: float = 5.0,
        cache_size: int = 100_000,
        max_ids: int = DEFAULT_MAX_IDS,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        clock: Callable[[], float] = time.monotonic,
        base_dir: Path | None = None,
        calls: dict[tuple[str, str], int] | None = None,
    ) -> None:
        """``base_dir``: the folder relative SQLite DSNs are read from (the settings
        file's, as ``data_dir``); ``None`` leaves them to the working directory.
        ``calls``: counts by (resource, ``hit``/``miss``/``error``), shared with the metrics
        so that a rules reload (a new ``Ownership``) keeps counting into the same series."""
        self.calls: dict[tuple[str, str], int] = {} if calls is None else calls
        if max_ids < 1 or max_concurrent < 1:
            raise ValueError("max_ids and max_concurrent must be at least 1")
        self._resources = dict(resources)
        self._upstreams = dict(upstreams)
        self._registry = registry
        self._timeout = http_timeout
        self._clock = clock
        self._max_ids = max_ids
        self._slots = asyncio.Semaphore(max_concurrent)
        # value: (answer, expires at); the TTL bounds the longest entry, expiry is per entry
        longest = max((r.cache_seconds for r in resources.values()), default=60.0)
        self._cache: TTLCache[Lookup, tuple[OwnerAnswer, float]] = TTLCache(
            maxsize=cache_size, ttl=max(longest, 1.0) + KEPT_AFTER_EXPIRY, timer=clock
        )
        self._inflight: dict[Lookup, asyncio.Future[OwnerAnswer]] = {}
        self._evictions = 0
        """Bumped by every eviction: a lookup that saw it change does not cache."""
        self._http: aiohttp.ClientSession | None = None
        self._sql: dict[str, AsyncEngine] = {}
        self._base_dir = base_dir

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        for resource in self._resources.values():
            if isinstance(resource.owner, SqlOwner) and resource.owner.dsn not in self._sql:
                self._sql[resource.owner.dsn] = read_only_engine(resource.owner.dsn, self._base_dir)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        for engine in self._sql.values():
            await engine.dispose()

    async def resolve(
        self, refs: Sequence[ObjectRef], *, upstream: str
    ) -> tuple[ResolvedRef, ...] | Rejection:
        """The owner of every reference, in order; a refusal when there are too many.

        Never raises. Over ``max_ids`` references nothing is looked up at all.
        """
        if len(refs) > self._max_ids:
            return Rejection(
                Reason.IDS_TOO_MANY,
                f"the request names {len(refs)} objects; at most {self._max_ids} are accepted",
            )
        if len(refs) == 1:  # the common case: no task for gather to schedule and await
            return (ResolvedRef(refs[0], await self._answer(refs[0], upstream)),)
        answers = await asyncio.gather(*(self._answer(ref, upstream) for ref in refs))
        return tuple(ResolvedRef(ref, answer) for ref, answer in zip(refs, answers, strict=True))

    def upstream_url(self, name: str) -> str | None:
        """The base URL of upstream ``name`` in these rules (what ``{upstream}`` reads)."""
        upstream = self._upstreams.get(name)
        return None if upstream is None else upstream.url

    def cached(
        self,
        refs: Sequence[ObjectRef],
        *,
        upstream: str,
        cache: Ownership | None = None,
        grace: float = 0.0,
        names: Mapping[str, str] | None = None,
    ) -> tuple[ResolvedRef, ...] | Rejection | None:
        """The owners of ``refs`` as this instance's rules look them up, read from the
        cache of ``cache`` (default: this one) only; ``None`` when one is not cached.

        Never looks anything up and counts nothing: a shadow rules version decides with
        what the live version's lookups already learned (``gateway/shadow.py``).
        ``grace``: seconds an answer may be past its cache time and still be read (the
        live decision of the same request read it moments ago, while it was fresh).
        ``names``: the name ``cache``'s rules give a resource type these rules name
        otherwise (looked up alike: see ``shadow.alike_resources``).
        """
        if len(refs) > self._max_ids:
            return Rejection(
                Reason.IDS_TOO_MANY,
                f"the request names {len(refs)} objects; at most {self._max_ids} are accepted",
            )
        store = (cache or self)._cache
        now = self._clock()
        found: list[ResolvedRef] = []
        for ref in refs:
            key = self._plan(ref, upstream)
            if isinstance(key, ResolverFailed):
                found.append(ResolvedRef(ref, key))
                continue
            if names is not None and (theirs := names.get(ref.type, ref.type)) != ref.type:
                key = Lookup(theirs, key.object_id, key.source, key.reads)
            cached = store.get(key)
            if cached is None or cached[1] + grace <= now:
                return None
            found.append(ResolvedRef(ref, cached[0]))
        return tuple(found)

    def learns_on_create(self, resource_type: str) -> bool:
        resource = self._resources.get(resource_type)
        return (
            resource is not None
            and isinstance(resource.owner, RegistryOwner)
            and (resource.owner.learn_on_create)
        )

    async def learn_created(self, *, resource_type: str, object_id: str, tenant: str) -> bool:
        """Record the owner of an object created through the gateway; ``False`` if known.

        An id that already has an owner keeps it: a create answered with the address of
        an existing object must never move that object into the creator's tenant.
        """
        if not self.learns_on_create(resource_type):
            return False
        if await self._registry.get_owner(resource_type, object_id) is not None:
            return False
        await self._registry.set_owner(resource_type, object_id, tenant)  # never replaces
        self.invalidate(resource_type, object_id)
        return True

    def invalidate(self, resource_type: str, object_id: str | None = None) -> None:
        """Forget a cached registry answer (the registry is the only source we change);
        with no ``object_id``, every registry answer of ``resource_type``."""
        self._evictions += 1
        if object_id is not None:
            self._cache.pop(Lookup(resource_type, object_id, REGISTRY), None)
            return
        for key in [k for k in self._cache if k.resource == resource_type and k.source == REGISTRY]:
            self._cache.pop(key, None)

    def _plan(self, ref: ObjectRef, upstream: str) -> Lookup | ResolverFailed:
        """The lookup ``ref`` needs when its route goes to ``upstream``."""
        resource = self._resources.get(ref.type)
        if resource is None:
            return ResolverFailed(f"no resource type {ref.type!r} in the rules")
        match resource.owner:
            case HttpOwner() as owner:
                base = self._upstreams.get(owner.upstream or upstream)
                if base is None:
                    return ResolverFailed(f"no upstream {owner.upstream or upstream!r}")
                url = owner.url.replace("{upstream}", base.url)
                url = url.replace("{id}", quote(ref.id, safe=""))
                return Lookup(ref.type, ref.id, f"{owner.method} {url}", owner.tenant_field)
            case SqlOwner() as owner:
                return Lookup(ref.type, ref.id, f"sql {owner.dsn} {owner.query}", resource.id_type)
            case RegistryOwner():
                return Lookup(ref.type, ref.id, REGISTRY)

    async def _answer(self, ref: ObjectRef, upstream: str) -> OwnerAnswer:
        key = self._plan(ref, upstream)
        if isinstance(key, ResolverFailed):
            return key
        cached = self._cache.get(key)
        if cached is not None and cached[1] > self._clock():
            self._count(key.resource, "hit")
            return cached[0]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[OwnerAnswer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            evictions = self._evictions
            async with self._slots:
                answer = await self._lookup(key)
            if evictions == self._evictions:
                self._remember(key, answer)
            self._count(key.resource, "error" if isinstance(answer, ResolverFailed) else "miss")
            future.set_result(answer)
            return answer
        finally:
            if not future.done():
                future.set_result(ResolverFailed("lookup was cancelled"))
            del self._inflight[key]

    def _count(self, resource: str, result: str) -> None:
        key = (resource, result)
        self.calls[key] = self.calls.get(key, 0) + 1

    def _remember(self, key: Lookup, answer: OwnerAnswer) -> None:
        resource = self._resources[key.resource]
        if isinstance(answer, Owned):
            self._cache[key] = (answer, self._clock() + resource.cache_seconds)
        elif isinstance(answer, NotFound):
            self._cache[key] = (answer, self._clock() + resource.negative_cache_seconds)

    async def _lookup(self, key: Lookup) -> OwnerAnswer:
        resource = self._resources[key.resource]
        try:
            match resource.owner:
                case HttpOwner() as owner:
                    return await self._http_lookup(owner, key.source.split(" ", 1)[1])
                case SqlOwner() as owner:
                    return await self._sql_lookup(owner, key.object_id, resource)
                case RegistryOwner():
                    tenant = await self._registry.get_owner(key.resource, key.object_id)
                    return Owned(tenant) if tenant else NotFound()
        except Exception as error:  # fail closed on anything at all
            log.warning("owner lookup failed for %s %s: %r", key.resource, key.object_id, error)
            return ResolverFailed(type(error).__name__)

    async def _http_lookup(self, owner: HttpOwner, url: str) -> OwnerAnswer:
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
        self, owner: SqlOwner, object_id: str, resource: ResourceDef
    ) -> OwnerAnswer:
        engine = self._sql[owner.dsn]
        value: int | str = int(object_id) if resource.id_type == "int" else object_id
        async with engine.connect() as conn:
            row = (await conn.execute(text(owner.query), {"id": value})).first()
            await conn.rollback()
        if row is None:
            return NotFound()
        tenant = row[0]
        return Owned(str(tenant)) if tenant else ResolverFailed("owner column is empty")


def resolve_dsn(dsn: str, base_dir: Path | None) -> str:
    """``dsn`` with a relative SQLite path made absolute against ``base_dir``.

    Relative paths in the settings (``data_dir``) are the settings file's folder's;
    resolver DSNs follow the same rule, so ``sqlite:///ledger.db`` does not depend on
    the folder the gateway was started from. Other DSNs are returned unchanged.
    """
    url = make_url(dsn)
    database = url.database
    if (
        base_dir is None
        or url.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")
        or Path(database).is_absolute()
    ):
        return dsn
    return url.set(database=str(base_dir / database)).render_as_string(hide_password=False)


def read_only_engine(dsn: str, base_dir: Path | None = None) -> AsyncEngine:
    """An engine that cannot write: SQLite opened with ``mode=ro``; others as given."""
    url = make_url(resolve_dsn(dsn, base_dir))
    if url.get_backend_name() == "sqlite" and url.database:
        path = quote(url.database)
        return create_async_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    return create_async_engine(url)
