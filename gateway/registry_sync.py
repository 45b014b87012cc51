"""Every process forgets the registry owners that any process changed.

A registry write records its change and notifies ``gatehold_registry`` with the
changed ``[type, id]`` (``store/registry.py``). The change feed hands that payload to
``RegistryFollower``, which evicts the owner from the running rules' ``Ownership``
cache at once and wakes its poll. The poll evicts every change it has not evicted yet:
every ``POLL_SECONDS`` without notifications (SQLite, LISTEN off or lost), every
``NOTIFIED_POLL_SECONDS`` as the fallback while listening.

The poll reads the changes above a cursor (``seq``), not by time, so the writers'
clocks do not matter and each poll reads only what is new. On PostgreSQL concurrent
writers may commit their changes out of ``seq`` order: a ``seq`` missing below one
already read is waited for (the cursor stays below it) for ``SETTLE_SECONDS``, then
given up (a rolled-back write leaves such a gap for good). A change is recorded at
the end of its short transaction, so it commits well within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.outage import OutageNotice, poll_store
from gateway.store import registry as registry_store
from gateway.store.notify import NOTIFIED_POLL_SECONDS, REGISTRY, ChangeFeed, stop_task

log = logging.getLogger("gatehold")

SETTLE_SECONDS = 10.0
"""How long a gap in ``seq`` is waited for before it counts as a rolled-back write."""

Evict = Callable[[str, str | None], None]
"""Forget the cached owner of (type, id); of every object of the type for id ``None``."""


class RegistryFollower:
    """Evicts, in one process, the cached registry owners changed anywhere."""

    def __init__(
        self,
        engine: AsyncEngine,
        feed: ChangeFeed,
        evict: Evict,
        *,
        clock: Callable[[], float] = time.monotonic,
        notified_poll_seconds: float = NOTIFIED_POLL_SECONDS,
    ) -> None:
        self._engine = engine
        self._feed = feed
        self._evict = evict
        self._clock = clock
        self._notified_poll = notified_poll_seconds
        self._wake = asyncio.Event()
        self._cursor: int | None = None
        """Every change up to this ``seq`` is evicted (or given up); ``None`` before start."""
        self._above: set[int] = set()
        """Changes above the cursor evicted already (a gap below them holds the cursor)."""
        self._gaps: dict[int, float] = {}
        """``seq`` missing above the cursor, and since when (``clock``)."""
        self._task: asyncio.Task[None] | None = None
        feed.subscribe(REGISTRY, self._heard)

    def _heard(self, payload: str) -> None:
        change = registry_store.parse_payload(payload)
        if change is not None:
            self._evict(*change)
        self._wake.set()

    async def start(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # nothing is cached yet: no harm
            await self.catch_up()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        await poll_store(
            self.catch_up,
            wake=self._wake,
            interval=lambda: self._feed.poll_seconds(self._notified_poll),
            outage=OutageNotice(
                log,
                "registry: cannot read the recent changes",
                "registry: the recent changes can be read again",
            ),
        )

    async def catch_up(self) -> int:
        """Evict every change not evicted yet; returns how many. The first call only
        notes where the changes stand (a starting process has nothing cached)."""
        if self._cursor is None:
            self._cursor = await registry_store.last_change(self._engine)
            return 0
        changes = await registry_store.changes_after(self._engine, self._cursor)
        fresh = [change for change in changes if change.seq not in self._above]
        for change in fresh:
            self._evict(change.resource_type, change.object_id)
        self._advance({change.seq for change in changes})
        return len(fresh)

    def _advance(self, read: set[int]) -> None:
        """Move the cursor up to the first gap still worth waiting for."""
        assert self._cursor is not None  # noqa: S101 - catch_up set it
        now = self._clock()
        top = max(read, default=self._cursor)
        for seq in range(self._cursor + 1, top + 1):
            if seq in read:
                self._gaps.pop(seq, None)
            else:
                self._gaps.setdefault(seq, now)
        self._gaps = {seq: at for seq, at in self._gaps.items() if now - at < SETTLE_SECONDS}
        self._cursor = min(self._gaps) - 1 if self._gaps else top
        self._above = {seq for seq in self._above | read if seq > self._cursor}
