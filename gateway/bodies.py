"""Request bodies the gateway reads before deciding: media type, charset, bounded reads.

A body is read only where a decision depends on it (ids in it, or a POST that may
carry a ``_method`` override), and then it is forwarded exactly as read. It is read
only if the gateway can read it *the way the app will*: the Content-Type must parse
unambiguously, the charset must be UTF-8 (or ASCII) and the bytes valid UTF-8 without
a byte-order mark. Apps decode by the declared charset (``request.post()`` in aiohttp,
``request.json()`` too), so a UTF-16 or UTF-7 body would show the gateway one id and
the app another.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from gateway.body_stream import RequestBody
from gateway.errors import BodyStalled, BodyTooLarge
from gateway.model import IncomingRequest, Reason, Rejection

CHUNK = 64 * 1024
SPOOL_AFTER = 1024 * 1024
"""Bodies larger than this are kept in a temporary file, not in memory."""
MAX_JSON_DEPTH = 64

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 - the RFC 9110 token, not a secret
_MEDIA = re.compile(rf"[ \t]*({_TOKEN})/({_TOKEN})[ \t]*")
_PARAM = re.compile(
    rf'[ \t]*;[ \t]*(?:({_TOKEN})=({_TOKEN}|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\.)*"))?[ \t]*'
)
_UTF8 = frozenset({"utf-8", "utf8"})
_ASCII = frozenset({"us-ascii", "ascii"})
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


class BodyKind(StrEnum):
    """How the gateway parses a body."""

    FORM = "form"
    MULTIPART = "multipart"
    JSON = "json"
    OTHER = "other"
    """A media type the gateway does not parse (files, XML, …)."""


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed Content-Type: lower-case type/subtype and parameters."""

    type: str
    params: dict[str, str]

    @property
    def kind(self) -> BodyKind:
        if self.type == "application/x-www-form-urlencoded":
            return BodyKind.FORM
        if self.type == "multipart/form-data":
            return BodyKind.MULTIPART
        if self.type == "application/json" or (
            self.type.startswith("application/") and self.type.endswith("+json")
        ):
            return BodyKind.JSON
        return BodyKind.OTHER


def unsupported(detail: str) -> Rejection:
    return Rejection(Reason.BODY_UNSUPPORTED, detail)


def invalid(detail: str) -> Rejection:
    return Rejection(Reason.BODY_INVALID, detail)


def parse_media_type(value: str) -> MediaType | None:
    """RFC 9110 ``type/subtype *(; name=value)``; ``None`` if it is anything else.

    A value some servers read differently (``a/b, c/d`` is a form to PHP and Rack, a
    repeated parameter, a stray character) does not parse.
    """
    head = _MEDIA.match(value)
    if head is None:
        return None
    params: dict[str, str] = {}
    position = head.end()
    while position < len(value):
        found = _PARAM.match(value, position)
        if found is None or found.end() == position:
            return None
        position = found.end()
        if found.group(1) is None:
            continue
        name = found.group(1).lower()
        raw = found.group(2)
        if name in params:
            return None
        params[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return MediaType(f"{head.group(1)}/{head.group(2)}".lower(), params)


def request_media_type(request: IncomingRequest) -> MediaType | Rejection | None:
    """The body's media type; ``None`` when no Content-Type was sent."""
    values = request.headers.getall("Content-Type", [])
    if not values:
        return None
    media = parse_media_type(values[0]) if len(values) == 1 else None
    if media is None:
        return unsupported("the Content-Type header could not be read unambiguously")
    return media


def charset_problem(media: MediaType) -> Rejection | None:
    """A refusal unless the declared charset is absent, UTF-8 or ASCII."""
    charset = media.params.get("charset")
    if charset is None or charset.lower() in _UTF8 | _ASCII:
        return None
    return unsupported(f"bodies must be UTF-8; this one declares charset={charset[:40]}")


def decode_text(data: bytes, media: MediaType | None) -> str | Rejection:
    """The body as text: valid UTF-8 (ASCII if declared so), no byte-order mark."""
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return invalid("the body starts with a byte-order mark")
    ascii_only = media is not None and media.params.get("charset", "").lower() in _ASCII
    try:
        return data.decode("ascii" if ascii_only else "utf-8", "strict")
    except UnicodeDecodeError:
        return invalid("the body is not valid " + ("ASCII" if ascii_only else "UTF-8"))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKey
    return document


def json_depth_exceeded(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (strings are skipped)."""
    depth = 0
    for token in _JSON_TOKENS.finditer(data):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def parse_json(data: bytes, media: MediaType | None) -> Any | Rejection:
    """A JSON document read strictly: UTF-8, bounded depth, no repeated keys."""
    text = decode_text(data, media)
    if isinstance(text, Rejection):
        return text
    if json_depth_exceeded(data):
        return invalid(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey:
        return invalid("the JSON body repeats a key in one object")
    except (ValueError, RecursionError):
        return invalid("the JSON body could not be parsed")


class Body:
    """A request body read in full: in memory, or spooled to a temporary file."""

    def __init__(self, data: bytes | None, spool: IO[bytes] | None, size: int) -> None:
        self._data = data
        self._spool = spool
        self.size = size

    def content(self) -> bytes:
        """The whole body as bytes (a spooled body is read back, not kept in memory)."""
        if self._data is not None:
            return self._data
        if self._spool is None:
            return b""
        self._spool.seek(0)
        return self._spool.read()

    def view(self) -> bytes | SpooledBytes:
        """The body to scan: its bytes, or a spooled body read a window at a time."""
        if self._spool is None:
            return self.content()
        return SpooledBytes(self._spool, self.size)

    def forwardable(self) -> bytes | IO[bytes]:
        """What to send upstream: the same bytes that were inspected."""
        if self._spool is None:
            return self.content()
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def __del__(self) -> None:
        # A refused request drops its body unsent; the spool file goes with it.
        self.close()


async def read_body(
    request: IncomingRequest, limit: int, *, idle: float, total: float
) -> Body | Rejection:
    """Read the whole body under the route's limits: 413 past ``limit`` bytes (chunked or
    not, counted inflated), 408 when it pauses longer than ``idle`` or is not all there
    within ``total`` seconds (``body_stream.RequestBody``)."""
    if request.content_length is not None and request.content_length > limit:
        return _too_large()
    reader = RequestBody(request, limit=limit, idle=idle, deadline=time.monotonic() + total)
    spool = Spool()
    try:
        async for chunk in reader.stream():
            spool.write(chunk)
    except (BodyTooLarge, BodyStalled) as failure:
        spool.discard()
        return limit_refusal(failure)
    return spool.body()


def limit_refusal(failure: BodyTooLarge | BodyStalled) -> Rejection:
    """The refusal of a body a limit stopped (413 too large, 408 too slow)."""
    if isinstance(failure, BodyTooLarge):
        return _too_large()
    return Rejection(Reason.BODY_TIMEOUT, "the request body did not arrive in time")


class Spool:
    """Bytes written in order, kept in memory up to ``SPOOL_AFTER``, then in a temporary
    file: a body of any size costs bounded memory."""

    def __init__(self) -> None:
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is None and self.size > SPOOL_AFTER:
            self._file = tempfile.TemporaryFile()
            self._file.write(self._memory)
            self._memory = bytearray()
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._memory += chunk

    def window(self, start: int, end: int) -> IO[bytes]:
        """The bytes written from offset ``start`` to ``end``, to read as a file."""
        if self._file is None:
            return io.BytesIO(bytes(self._memory[start:end]))
        self._file.flush()
        return io.BufferedReader(FileWindow(self._file, start, end))

    def body(self) -> Body:
        """What was written, as a ``Body``; the spool is handed over with it."""
        if self._file is not None:
            self._file.flush()
        if self._file is None:
            return Body(bytes(self._memory), None, self.size)
        return Body(None, self._file, self.size)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()


class FileWindow(io.RawIOBase):
    """Read-only, seekable view of ``[start, end)`` of an open file (its own position)."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._end = end
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    @property
    def _length(self) -> int:
        return self._end - self._start

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        self._file.seek(self._start + self._position)
        data = self._file.read(wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


class SpooledBytes:
    """A spooled body scanned as ``bytes`` are (``len``, ``find``, slices), in windows.

    A scan of a large body must not cost its size in memory. A memory map would not copy
    it, but every page a scan touches counts in the process's RSS while it is mapped, so
    a 200 MiB form read for a ``_method`` would add 200 MiB. This keeps one window of
    ``window`` bytes (the last one read); ``find`` and slices answer what the same calls
    on the whole body's bytes answer, so a parser written for ``bytes`` runs unchanged.
    """

    def __init__(self, file: IO[bytes], size: int, window: int = CHUNK) -> None:
        self._file = file
        self._size = size
        self._window = window
        self._start = 0
        """Body offset of ``_data[0]``."""
        self._data = b""

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError("only contiguous slices are read")
        if stop <= start:
            return b""
        if self._start <= start and stop <= self._start + len(self._data):
            return self._data[start - self._start : stop - self._start]
        return self._read(start, stop - start)

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """``bytes.find``: the lowest offset of ``sub`` within ``[start, end)``, or -1."""
        if not sub:
            raise ValueError("an empty pattern is not searched for")
        position, end, _ = slice(start, end).indices(self._size)
        while end - position >= len(sub):
            covered = self._start + len(self._data)
            if not self._start <= position <= covered - len(sub):
                self._data = b""  # one window at a time
                self._data = self._read(position, max(self._window, len(sub)))
                self._start = position
                covered = position + len(self._data)
                if covered - position < len(sub):  # the file ended before ``size``
                    return -1
            found = self._data.find(sub, position - self._start, end - self._start)
            if found != -1:
                return self._start + found
            if covered >= end:
                return -1
            position = covered - len(sub) + 1  # a match may start in the window's tail
        return -1

    def _read(self, start: int, count: int) -> bytes:
        self._file.seek(start)
        return self._file.read(max(0, min(count, self._size - start)))


def _too_large() -> Rejection:
    return Rejection(Reason.BODY_TOO_LARGE, "the request body exceeds this route's limit")
