"""An upstream that misbehaves on purpose, on a raw asyncio socket server.

The last segment of the path picks a fault; the server counts the requests it received by their
``X-Request-Id`` (as ``victim.Victim`` does), so a test can tell whether a request got
this far. Faults:

``/ok``          a proper 200 answer
``/hang``        reads the request and never answers
``/reset``       sends the head and part of the body, then resets the connection (RST)
``/close``       sends the head and part of the body, then closes cleanly (FIN)
``/stall``       sends the head and part of the body, then nothing more (held open)
``/garbage``     a status line that is not HTTP
``/bad-header``  a header line without a colon
``/ctl-header``  a header value with a NUL byte
``/huge-header`` a 70 KB header (aiohttp's client accepts 8 KB)
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

PROMISED = 100_000
"""Body length the cut answers promise (``Content-Length``)."""
SENT_BEFORE_CUT = 1_000
"""Body bytes the cut answers send before breaking off."""

_CANNED = {
    "/ok": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    "/garbage": b"HELLO THERE\r\n\r\n",
    "/bad-header": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Header\r\n\r\nok",
    "/ctl-header": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\x00b\r\n\r\nok",
    "/huge-header": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: "
    + b"a" * 70_000
    + b"\r\n\r\nok",
}
_CUT_HEAD = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {PROMISED}\r\n\r\n"


class FaultyUpstream:
    """The running server: its URL and the requests it saw."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: Counter[str] = Counter()
        """Requests received, by ``X-Request-Id``."""
        self.hanging: set[asyncio.StreamWriter] = set()

    def hits(self, request_id: str) -> int:
        return self.seen[request_id]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, request_id = await _read_head(reader)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            return
        self.seen[request_id] += 1
        if path == "/hang":
            self.hanging.add(writer)  # held open until the server stops
            return
        if path in ("/reset", "/close", "/stall"):
            writer.write(_CUT_HEAD.encode() + b"x" * SENT_BEFORE_CUT)
            await writer.drain()
            await asyncio.sleep(0.05)  # let the head reach the gateway before the cut
            if path == "/stall":
                self.hanging.add(writer)
            elif path == "/reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
            return
        writer.write(_CANNED.get(path, _CANNED["/ok"]))
        await writer.drain()
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(path, X-Request-Id) of one request; its body, if any, is left unread."""
    line = await reader.readuntil(b"\r\n")
    path = "/" + line.split()[1].decode().split("?", 1)[0].rsplit("/", 1)[-1]
    request_id = ""
    while (header := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "x-request-id":
            request_id = value.strip()
    return path, request_id


@asynccontextmanager
async def faulty_upstream() -> AsyncIterator[FaultyUpstream]:
    upstream = FaultyUpstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        for writer in upstream.hanging:
            writer.close()
        server.close()
        await server.wait_closed()
