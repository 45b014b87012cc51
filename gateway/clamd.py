"""A ClamAV ``clamd`` client over its local socket: files streamed with ``INSTREAM``.

One connection per file. The file goes out as it arrives, in length-prefixed pieces
(``zINSTREAM``; a zero length ends it), each write waiting for the socket to drain,
so a file of any size costs one piece of memory. ``clamd`` answers ``stream: OK``,
``stream: <signature> FOUND``, or an error (``INSTREAM size limit exceeded``: the
daemon's ``StreamMaxLength`` is below the file). Anything but a verdict (no daemon,
a timeout, an error answer) raises ``ScannerUnavailable``; the route decides what that
means (``upload.scan.on_unavailable``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from gateway.errors import ScannerUnavailable

PIECE = 64 * 1024
"""Largest piece sent in one length-prefixed frame."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScanVerdict:
    """What ``clamd`` found in one file."""

    signature: str | None
    """The signature that matched; ``None``: clean."""

    @property
    def clean(self) -> bool:
        return self.signature is None


class Clamd:
    """The ``clamd`` at ``socket_path``; ``open`` starts a scan of one file."""

    def __init__(self, socket_path: str, *, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def open(self) -> ClamdScan:
        """A scan of one file; raises ``ScannerUnavailable`` when no daemon answers."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
                writer.write(b"zINSTREAM\0")
                await writer.drain()
        except (OSError, TimeoutError) as error:
            raise ScannerUnavailable(f"clamd at {self.socket_path}: {error!r}") from None
        return ClamdScan(reader, writer, timeout=self.timeout)

    async def ping(self) -> bool:
        """Whether the daemon answers ``PING``."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
                writer.write(b"zPING\0")
                await writer.drain()
                answer = await reader.readuntil(b"\0")
                writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        return answer == b"PONG\0"


class ClamdScan:
    """One file being scanned: ``send`` its bytes in order, then ``verdict``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout

    async def send(self, data: bytes) -> None:
        for start in range(0, len(data), PIECE):
            piece = data[start : start + PIECE]
            await self._io(self._write(struct.pack(">I", len(piece)) + piece))

    async def verdict(self) -> ScanVerdict:
        """End the file and read what the daemon found."""
        try:
            await self._io(self._write(b"\0\0\0\0"))
            reply = await self._io(self._reader.readuntil(b"\0"))
        finally:
            self.close()
        return _parse(reply.rstrip(b"\0").decode("utf-8", "replace"))

    def close(self) -> None:
        self._writer.close()

    async def _write(self, frame: bytes) -> None:
        self._writer.write(frame)
        await self._writer.drain()

    async def _io(self, step: Awaitable[T]) -> T:
        """``step`` within the timeout; a broken or silent daemon is unavailable."""
        try:
            async with asyncio.timeout(self._timeout):
                return await step
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.close()
            raise ScannerUnavailable("clamd broke off the scan or did not answer") from None


def _parse(reply: str) -> ScanVerdict:
    if reply == "stream: OK":
        return ScanVerdict(None)
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        return ScanVerdict(reply[len("stream: ") : -len(" FOUND")])
    raise ScannerUnavailable(f"clamd answered {reply[:200]!r}")
