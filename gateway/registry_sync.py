"""Every process forgets the registry owners that any process changed.

A registry write records its change and notifies ``gatehold_registry`` with the
changed ``[type, id]`` (``store/registry.py``). The change feed hands that payload to
``RegistryFollower``, which evicts the owner from the running rules' ``Ownership``
cache at once and wakes its poll. The poll reads the changes of the last
``LOOKBACK`` seconds (long enough for the writers' clock skew) and evicts each one it
has not evicted yet: every ``POLL_SECONDS`` without notifications (SQLite, LISTEN off
or lost), every ``NOTIFIED_POLL_SECONDS`` as the fallback while listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.store import registry as registry_store
from gateway.store.notify import REGISTRY, ChangeFeed

log = logging.getLogger("gatehold")

LOOKBACK = 120.0
"""Seconds of registry changes every poll re-reads."""
NOTIFIED_POLL_SECONDS = 5.0
"""The fallback poll while the change feed listens."""

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
        clock: Callable[[], float] = time.time,
        notified_poll_seconds: float = NOTIFIED_POLL_SECONDS,
    ) -> None:
        self._engine = engine
        self._feed = feed
        self._evict = evict
        self._clock = clock
        self._notified_poll = notified_poll_seconds
        self._wake = asyncio.Event()
        self._evicted: dict[int, float] = {}
        """Changes already evicted (by seq), with their time, until they leave the look-back."""
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self._feed.poll_seconds(self._notified_poll)
                )
            self._wake.clear()
            try:
                await self.catch_up()
            except StoreUnavailable as error:  # the next poll reads again
                log.warning("registry: cannot read the recent changes: %s", error)

    async def catch_up(self) -> int:
        """Evict every recent change not evicted yet; returns how many."""
        cutoff = self._clock() - LOOKBACK
        changes = await registry_store.changes_since(self._engine, cutoff)
        fresh = [change for change in changes if change.seq not in self._evicted]
        for change in fresh:
            self._evict(change.resource_type, change.object_id)
            self._evicted[change.seq] = change.changed_at
        self._evicted = {seq: at for seq, at in self._evicted.items() if at >= cutoff}
        return len(fresh)
