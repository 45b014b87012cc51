"""Enumeration defence: many denials on distinct object ids look like ID guessing.

A principal who collects ``slow_after`` denials on distinct ids within ``window`` is
slowed down (each further denial waits a little longer), and at ``block_after`` is
blocked for ``block_for``. Only denials that an id guesser produces count: a foreign
or a missing object.

Every replica counts in the store they share (``store.rate_limits``), so a guesser who
spreads its requests over replicas or workers is counted once, in total. Only counted
denials, rare in normal traffic, touch the store; ``blocked`` runs on every request and
reads this process's copy of the active blocks. That copy learns a block made here at
once, and one made elsewhere by ``refresh``, which ``start`` runs every half second
(and which anything that hears of a change sooner may call). The replica whose denial
crossed the threshold stores the block and is the only one told ``newly_blocked``, so
the block is audited once. When the store cannot count, this process counts alone
until it can again: the defence weakens to per process, it does not stop.

Object ids are stored as SHA-256 digests: only their number matters here, and the
denials themselves are in the audit log. Principals are stored as their user id (an
internal number), which every replica must match against; a block is audited anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.model import Decision, Principal, Reason
from gateway.outage import OutageNotice, poll_store
from gateway.store import rate_limits
from gateway.store.notify import ENUMERATION, ChangeFeed, stop_task
from gateway.store.rate_limits import Denials, SweepTimer

log = logging.getLogger("gatehold")
COUNTED = frozenset({Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND})
MAX_DELAY = 2.0
POLL_SECONDS = 0.5
"""How often each process reads the blocks other processes made."""
NOTIFIED_POLL = 5.0
"""The fallback poll for blocks made elsewhere while notifications arrive."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after observing one decision."""

    delay: float = 0.0
    """Seconds to wait before answering (slow-down)."""
    newly_blocked: bool = False
    """This denial crossed the block threshold: audit and alert once."""
    distinct_ids: int = 0


class EnumerationGuard:
    """Per-principal sliding window of denied object ids, shared through the store."""

    def __init__(
        self,
        *,
        window: float,
        slow_after: int,
        block_after: int,
        block_for: float,
        engine: AsyncEngine | None = None,
        clock: Callable[[], float] = time.time,
        max_principals: int = 100_000,
    ) -> None:
        self._window = window
        self._slow_after = slow_after
        self._block_after = block_after
        self._block_for = block_for
        self._engine = engine
        self._clock = clock
        self._blocked: dict[str, float] = {}
        """Principal → end of its block; replaced by each ``refresh``."""
        self._local: TTLCache[str, dict[str, float]] = TTLCache(
            maxsize=max_principals, ttl=window, timer=clock
        )
        """Denials counted in this process alone: without a store, or while it is down."""
        self._outage = OutageNotice(
            log,
            "enumeration defence counts in this process only",
            "enumeration defence counts in the shared store again",
        )
        self._sweeps = SweepTimer()
        self._poller: asyncio.Task[None] | None = None
        self._feed: ChangeFeed | None = None
        self._wake = asyncio.Event()

    def blocked(self, principal: object) -> bool:
        """Whether this principal is blocked right now (memory only: the hot path)."""
        if not isinstance(principal, Principal):
            return False
        until = self._blocked.get(principal.user_id)
        return until is not None and self._clock() < until

    async def observe(self, principal: object, decision: Decision) -> Verdict:
        """Count a denial on an object id; say whether to slow down or block."""
        if not isinstance(principal, Principal) or decision.reason not in COUNTED:
            return Verdict()
        ref = decision.resource
        if ref is None:
            return Verdict()
        now = self._clock()
        denials = await self._count(principal.user_id, f"{ref.type}:{ref.id}", now)
        if denials.newly_blocked:
            self._blocked = {**self._blocked, principal.user_id: now + self._block_for}
            return Verdict(newly_blocked=True, distinct_ids=denials.distinct)
        if denials.distinct > self._slow_after:
            delay = min(MAX_DELAY, 0.1 * (denials.distinct - self._slow_after))
            return Verdict(delay=delay, distinct_ids=denials.distinct)
        return Verdict(distinct_ids=denials.distinct)

    async def _count(self, user_id: str, object_key: str, now: float) -> Denials:
        if self._engine is None:
            return self._count_here(user_id, object_key, now)
        try:
            denials = await rate_limits.note_denial(
                self._engine,
                principal=user_id,
                item=rate_limits.digest("object", object_key),
                window=self._window,
                block_after=self._block_after,
                block_for=self._block_for,
                now=now,
                sweep=self._sweeps.due(now),
            )
        except StoreUnavailable as error:
            self._outage.failed(error)
            return self._count_here(user_id, object_key, now)
        self._outage.worked()
        return denials

    def _count_here(self, user_id: str, object_key: str, now: float) -> Denials:
        seen = self._local.get(user_id) or {}
        seen = {key: at for key, at in seen.items() if now - at <= self._window}
        seen[object_key] = now
        self._local[user_id] = seen
        crossed = len(seen) >= self._block_after and not self._is_blocked(user_id, now)
        return Denials(len(seen), newly_blocked=crossed)

    def _is_blocked(self, user_id: str, now: float) -> bool:
        return self._blocked.get(user_id, 0.0) > now

    async def refresh(self) -> None:
        """Learn the blocks made by every process sharing the store (one indexed read).

        Raises ``StoreUnavailable``; the blocks known here stay until they end.
        """
        if self._engine is None:
            return
        stored = await rate_limits.active_blocks(self._engine, now=self._clock())
        now = self._clock()
        kept = {user: until for user, until in self._blocked.items() if until > now}
        self._blocked = {**kept, **stored}

    def follow(self, feed: ChangeFeed) -> None:
        """Read the blocks at once when another process stores one (PostgreSQL)."""
        self._feed = feed
        feed.subscribe(ENUMERATION, lambda _payload: self._wake.set())

    async def start(self, *, poll_seconds: float = POLL_SECONDS) -> None:
        """Poll the store for blocks made elsewhere (nothing to do without a store);
        while notifications arrive, the poll is only a fallback."""
        if self._engine is not None:
            self._poller = asyncio.create_task(self._poll(poll_seconds))

    async def close(self) -> None:
        await stop_task(self._poller)

    async def _poll(self, poll_seconds: float) -> None:
        feed = self._feed
        await poll_store(
            self.refresh,
            wake=self._wake,
            interval=lambda: NOTIFIED_POLL if feed is not None and feed.listening else poll_seconds,
            outage=self._outage,
        )
