"""Reading a request body under limits: size, pause between pieces, and a deadline.

A body is read by the gateway, not trusted to arrive: every piece must come within
``idle`` seconds of the previous one and the whole before ``deadline``, and its size is
counted after decompression (aiohttp's server inflates ``Content-Encoding: gzip``
bodies), so a small compressed body cannot expand past the route's limit.

The first ``buffer`` bytes are read before any upstream connection is taken: a client
that trickles its body ties up only its own request, never a connection of the pool.
The rest is streamed. When a limit stops the stream half-way, the reason is kept on
the reader (``failure``): the HTTP client that consumes the stream reports such a stop
only as a broken connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from gateway.errors import BodyStalled, BodyTooLarge
from gateway.model import IncomingRequest

CHUNK = 64 * 1024


class RequestBody:
    """One request's body, read at most once, under the limits it was made with."""

    def __init__(
        self, request: IncomingRequest, *, limit: int, idle: float, deadline: float
    ) -> None:
        self._request = request
        self._limit = limit
        self._idle = idle
        self._deadline = deadline
        """``time.monotonic()`` by which the whole body must have arrived."""
        self._seen = 0
        self._prefix = b""
        self._complete = False
        self.failure: BodyTooLarge | BodyStalled | None = None
        """Why the stream stopped early, if a limit stopped it."""

    @property
    def complete(self) -> bool:
        """The whole body has been read."""
        return self._complete

    async def _next(self) -> bytes:
        wait = min(self._idle, self._deadline - time.monotonic())
        if wait <= 0:
            raise self._fail(BodyStalled())
        try:
            async with asyncio.timeout(wait):
                chunk = await self._request.content.readany()
        except TimeoutError:
            raise self._fail(BodyStalled()) from None
        self._seen += len(chunk)
        if self._seen > self._limit:
            raise self._fail(BodyTooLarge())
        return chunk

    def _fail(self, error: BodyTooLarge | BodyStalled) -> BodyTooLarge | BodyStalled:
        self.failure = error
        return error

    async def prefetch(self, size: int) -> bytes | None:
        """Read up to ``size`` bytes; the whole body if it ended by then, else ``None``.

        Raises ``BodyTooLarge`` or ``BodyStalled``.
        """
        parts: list[bytes] = []
        read = 0
        while read < size:
            chunk = await self._next()
            if not chunk:
                self._complete = True
                break
            parts.append(chunk)
            read += len(chunk)
        self._prefix = b"".join(parts)
        return self._prefix if self._complete else None

    async def stream(self) -> AsyncIterator[bytes]:
        """The prefetched bytes, then the rest as it arrives, under the same limits."""
        if self._prefix:
            yield self._prefix
            self._prefix = b""
        while not self._complete:
            chunk = await self._next()
            if not chunk:
                self._complete = True
                break
            yield chunk
