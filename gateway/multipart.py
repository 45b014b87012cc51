"""A strict ``multipart/form-data`` reader: the fields of a body, or why it is ambiguous.

Multipart parsers disagree at the edges (bare LF line ends, a boundary inside a part,
a preamble, transfer encodings, per-part charsets, RFC 2231 names), and each
disagreement is a place to hide an id or a ``_method`` from one reader and show it
to another. This reader accepts only the plain form browsers send and refuses the
rest, so what it reads is what every framework reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from gateway.bodies import MediaType, SpooledBytes, invalid, parse_media_type, unsupported
from gateway.model import Rejection

_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=?-]{1,70}")
_DISPOSITION = re.compile(r"form-data(?=[ \t]*;|[ \t]*$)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ALLOWED_HEADERS = frozenset({"content-disposition", "content-type"})
MAX_PART_HEADERS = 8 * 1024
Buffer = bytes | SpooledBytes
"""A body in memory, or a spooled one read a window at a time."""
FILE = "\0file"
"""The value given to a file part (its content is not a parameter value)."""


def parse_fields(
    data: Buffer, media: MediaType, relevant: Callable[[str], bool]
) -> list[tuple[str, str]] | Rejection:
    """(name, value) of every part in order. Only ``relevant`` names are decoded (strict
    UTF-8); others, and every file part, get ``FILE`` or ``""`` so uploads stay unread."""
    delimiter = form_delimiter(media)
    if isinstance(delimiter, Rejection):
        return delimiter
    problem = _delimiter_problem(data, delimiter)
    if problem:
        return invalid(problem)
    fields: list[tuple[str, str]] = []
    start = len(delimiter) + 2
    while True:
        end = data.find(b"\r\n" + delimiter, start)
        field = _field(data, start, end, relevant)
        if isinstance(field, Rejection):
            return field
        fields.append(field)
        after = end + 2 + len(delimiter)
        if data[after : after + 2] == b"--":
            return fields
        start = after + 2


def form_delimiter(media: MediaType) -> bytes | Rejection:
    """``--boundary`` of a form, or why its Content-Type is not one this reader accepts."""
    boundary = media.params.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        return invalid("the multipart body has no usable boundary")
    if set(media.params) - {"boundary", "charset"} or media.params.get(
        "charset", "utf-8"
    ).lower() not in ("utf-8", "utf8"):
        return unsupported("the multipart Content-Type has unexpected parameters")
    return b"--" + boundary.encode()


def _delimiter_problem(data: Buffer, delimiter: bytes) -> str:
    """Every occurrence of the boundary must be a clean delimiter line; the last closes."""
    if data[: len(delimiter) + 2] != delimiter + b"\r\n":
        return "the multipart body must start with its boundary (no preamble)"
    position, closed = 0, False
    while (found := data.find(delimiter, position)) != -1:
        if closed:
            return "the multipart body continues after its closing boundary"
        if found and data[found - 2 : found] != b"\r\n":
            return "the multipart boundary appears inside a part"
        end = found + len(delimiter)
        after = data[end : end + 2]
        if after == b"--":
            closed = True
            if len(data) - (end + 2) > 2 or data[end + 2 :] not in (b"", b"\r\n"):
                return "the multipart body has data after its closing boundary"
        elif after != b"\r\n":
            return "a multipart boundary line carries extra characters"
        position = end
    return "" if closed else "the multipart body is not closed"


def _field(
    data: Buffer, start: int, end: int, relevant: Callable[[str], bool]
) -> tuple[str, str] | Rejection:
    head_end = data.find(b"\r\n\r\n", start, end)
    if head_end == -1 and data[start : start + 2] == b"\r\n":
        return invalid("a multipart part has no headers")
    if head_end == -1 or head_end - start > MAX_PART_HEADERS:
        return invalid("a multipart part has no readable header block")
    headers = _headers(data[start:head_end])
    if isinstance(headers, Rejection):
        return headers
    disposition = _disposition(headers.get("content-disposition", ""))
    if isinstance(disposition, Rejection):
        return disposition
    name, is_file = disposition
    if is_file or not relevant(name):
        if is_file and relevant(name):
            return invalid(f"the field {name[:40]!r} may not be a file")
        return name, FILE if is_file else ""
    kind = parse_media_type(headers["content-type"]) if "content-type" in headers else None
    if "content-type" in headers and kind is None:
        return invalid("a multipart part's Content-Type could not be read")
    charset = kind.params.get("charset", "utf-8").lower() if kind else "utf-8"
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        return unsupported("multipart fields must be UTF-8")
    try:
        return name, data[head_end + 4 : end].decode("utf-8", "strict")
    except UnicodeDecodeError:
        return invalid("a multipart field is not valid UTF-8")


def _headers(head: bytes) -> dict[str, str] | Rejection:
    try:
        lines = head.decode("utf-8", "strict").split("\r\n")
    except UnicodeDecodeError:
        return invalid("a multipart part header is not valid UTF-8")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.lower()
        if not colon or name != name.strip() or "\n" in line or "\r" in line:
            return invalid("a multipart part header is malformed")
        if (refused := header_problem(name, headers)) is not None:
            return refused
        headers[name] = value.strip()
    return headers


def header_problem(name: str, seen: Collection[str]) -> Rejection | None:
    """A part header ``name`` (lower case) is refused unless it is one of the two a form
    part may carry, once: ``seen`` holds the names before it."""
    if name not in _ALLOWED_HEADERS or name in seen:
        return invalid(
            "a multipart part may carry one Content-Disposition and one Content-Type "
            f"header and nothing else ({name[:40]})"
        )
    return None


def _disposition(value: str) -> tuple[str, bool] | Rejection:
    """The field name and whether the part is a file, from ``form-data; name="x"``."""
    read = read_disposition(value)
    return read if isinstance(read, Rejection) else (read[0], read[1] is not None)


def read_disposition(
    value: str, *, literal_backslashes: bool = False
) -> tuple[str, str | None] | Rejection:
    """The field name and the file name (``None``: not a file) of ``form-data; name="x"``.

    Values are read as RFC 9110 quoted-strings; with ``literal_backslashes`` as HTML
    forms write them (a backslash is itself: browsers escape nothing but ``"``, CR and
    LF, as ``%22``, ``%0D``, ``%0A``), so ``..\\x.png`` is a path, and a ``\\"`` that
    some readers take for an escaped quote ends the value instead. Readers differ on
    these escapes: a gateway that passes a file name on writes it anew (``upload_form``).
    """
    if literal_backslashes:
        value = value.replace("\\", "\\\\")
    head = _DISPOSITION.match(value)
    parsed = parse_media_type("x/y" + value[head.end() :]) if head else None
    if head is None or parsed is None:
        if _CONTROL.search(value):
            return invalid(
                "a multipart part's name or file name holds control characters; rename the file"
            )
        return invalid("a multipart part lacks a readable Content-Disposition: form-data")
    params = parsed.params
    if set(params) - {"name", "filename"} or "name" not in params:
        return invalid("a multipart part must have one name (no name* or filename*)")
    name = params["name"]
    if "\\" in name or '"' in name:
        return invalid("a multipart field name holds quotes or backslashes")
    return name, params.get("filename")
