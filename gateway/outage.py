"""One warning per outage: background work that keeps failing says so once, not each time.

A poller that cannot reach the store tries again every half second; a line per try
would bury everything else in the log (and cost a write per try). ``OutageNotice``
logs the first failure, stays quiet while it lasts and logs once when it is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.errors import StoreUnavailable
from gateway.store.notify import woken


class OutageNotice:
    """Tells the log when ``what`` starts failing and when it works again."""

    def __init__(self, log: logging.Logger, failing: str, recovered: str) -> None:
        self._log = log
        self._failing = failing
        self._recovered = recovered
        self.ongoing = False

    def failed(self, error: BaseException) -> None:
        if not self.ongoing:
            self._log.warning("%s: %s", self._failing, error)
        self.ongoing = True

    def worked(self) -> None:
        if self.ongoing:
            self._log.info(self._recovered)
        self.ongoing = False


async def poll_store(
    step: Callable[[], Awaitable[object]],
    *,
    wake: asyncio.Event,
    interval: Callable[[], float],
    outage: OutageNotice,
) -> None:
    """Run ``step`` whenever ``wake`` is set or ``interval()`` seconds have passed, forever.

    A step the store cannot serve is tried again at the next wake or poll; ``outage``
    says so once.
    """
    while True:
        await woken(wake, interval())
        wake.clear()
        try:
            await step()
        except StoreUnavailable as error:
            outage.failed(error)
            continue
        outage.worked()
