"""A client that sends its request body slowly, on a real socket (bounded, never endless)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tests.support.rawhttp import RawResponse, parse_response


@dataclass
class Trickled:
    """What a trickling client got, and when."""

    response: RawResponse | None
    """``None`` when the gateway closed the connection without an answer."""
    seconds: float
    sent: int


async def trickle(
    host: str,
    port: int,
    target: str,
    headers: dict[str, str],
    *,
    first: bytes = b"x",
    every: float = 0.2,
    pieces: int = 50,
    piece: bytes = b"y",
    method: str = "POST",
) -> Trickled:
    """Send a chunked body: ``first``, then ``piece`` every ``every`` s, ``pieces`` times at most.

    Stops sending as soon as the gateway answers or closes, and reads its answer.
    ``every=0`` with ``pieces=0`` sends ``first`` and then nothing more.
    """
    started = time.monotonic()
    head = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + _chunk(first))
        await writer.drain()
        sent += len(first)
        answer = asyncio.ensure_future(_read_response(reader))
        for _ in range(pieces):
            done, _pending = await asyncio.wait({answer}, timeout=every)
            if done:
                break
            try:
                writer.write(_chunk(piece))
                await writer.drain()
                sent += len(piece)
            except ConnectionError:
                break
        data = await asyncio.wait_for(answer, timeout=15)
    except asyncio.IncompleteReadError:
        data = b""
    finally:
        writer.close()
    seconds = time.monotonic() - started
    return Trickled(parse_response(data) if data else None, seconds, sent)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One response: its head, then a ``Content-Length`` body (or up to EOF)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length is not None else await reader.read()
    return head + body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"
