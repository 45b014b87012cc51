"""Noticing revocations made by other processes: one poll shared by sessions and API keys.

Every process caches principals by credential hash. The process that revokes evicts at
once; the others poll the store for the hashes revoked lately and evict exactly those.
On PostgreSQL a revocation also notifies ``gatehold_revocations`` (payload ``sessions``
or ``api-keys``) in its transaction, and the change feed wakes the poll at once; the
poll keeps its period regardless, as the fallback and to re-evict an entry a load
racing the revocation put back.
Revocation times come from the clocks of the processes that revoke, so each poll looks
back far enough to cover their skew rather than only to the previous poll: comparing
against the newest time seen would miss a revocation stamped by a slower clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from gateway.errors import StoreUnavailable
from gateway.store.notify import RESYNC, REVOCATIONS, ChangeFeed, woken

LOOKBACK = 120.0
"""Seconds of revocations every poll re-reads."""

RevokedSince = Callable[[float], Awaitable[list[str]]]
"""Hashes of the credentials revoked at or after a time."""

RevocationListener = Callable[[Sequence[str]], None]
"""Told the hashes each poll found revoked (the same hash may come again next poll)."""


class Revocations:
    """Listeners to the revocations one credential cache notices (e.g. open WebSockets).

    The cache evicts a revoked credential so no new request passes with it; whatever
    outlives a request (an open WebSocket) subscribes here to end as well.
    """

    def __init__(self) -> None:
        self._listeners: list[RevocationListener] = []

    def subscribe(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def notify(self, hashes: Sequence[str]) -> None:
        if hashes:
            for listener in self._listeners:
                listener(hashes)


class Woken:
    """Set when the change feed says credentials of one kind were revoked (or may have been)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.event = asyncio.Event()

    def follow(self, feed: ChangeFeed) -> None:
        feed.subscribe(REVOCATIONS, self._heard)

    def _heard(self, payload: str) -> None:
        if payload in (self.kind, RESYNC):
            self.event.set()

    async def wait(self, seconds: float) -> None:
        """Until woken, or ``seconds`` at most."""
        await woken(self.event, seconds)
        self.event.clear()


async def evict_revoked(
    revoked_since: RevokedSince,
    cache: MutableMapping[str, Any],
    *,
    poll_seconds: float,
    clock: Callable[[], float],
    after_each: Callable[[], Awaitable[None]] | None = None,
    on_revoked: RevocationListener | None = None,
    woken: Woken | None = None,
) -> None:
    """Poll forever (sooner when ``woken``); evict revoked hashes from ``cache``, all of
    it if the store is down."""
    lookback = max(LOOKBACK, poll_seconds * 4)
    while True:
        if woken is None:
            await asyncio.sleep(poll_seconds)
        else:
            await woken.wait(poll_seconds)
        try:
            revoked = await revoked_since(clock() - lookback)
        except StoreUnavailable:
            cache.clear()  # cannot tell what was revoked: forget everything
            continue
        for credential_hash in revoked:
            cache.pop(credential_hash, None)
        if on_revoked is not None:
            on_revoked(revoked)
        if after_each is not None:
            await after_each()
