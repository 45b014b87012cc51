"""Send a request-target byte for byte (HTTP clients normalise paths; attackers don't)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    """Lower-case names; the last value of a repeated header."""
    body: bytes
    fields: list[tuple[str, str]] = field(default_factory=list)
    """Every header line as sent, in order, names in lower case."""

    def all(self, name: str) -> list[str]:
        """Every value sent for ``name``."""
        return [value for key, value in self.fields if key == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    host: str, port: int, method: str, target: bytes | str, headers: dict[str, str] | None = None
) -> RawResponse:
    """One HTTP/1.1 request on a fresh connection, the target sent exactly as given."""
    raw = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode() + b" " + raw + b" HTTP/1.1", f"Host: {host}:{port}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    lines += [b"Connection: close", b"", b""]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"\r\n".join(lines))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    return parse_response(data)


def parse_response(data: bytes) -> RawResponse:
    """The first HTTP/1.1 response in ``data``."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    fields = []
    for line in header_lines:
        name, _, value = line.partition(":")
        fields.append((name.strip().lower(), value.strip()))
    parsed = dict(fields)
    if parsed.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return RawResponse(status, parsed, body, fields)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
