"""A strict ``multipart/form-data`` reader: the fields of a body, or why it is ambiguous.

Multipart parsers disagree at the edges (bare LF line ends, a boundary inside a part,
a preamble, transfer encodings, per-part charsets, RFC 2231 names), and each
disagreement is a place to hide an id or a ``_method`` from one reader and show it
to another. This reader accepts only the plain form browsers send and refuses the
rest, so what it reads is what every framework reads.
"""

from __future__ import annotations

import re

from gateway.bodies import MediaType, invalid, parse_media_type, unsupported
from gateway.model import Rejection

_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=?-]{1,70}")
_DISPOSITION = re.compile(r"form-data(?=[ \t]*;|[ \t]*$)", re.IGNORECASE)
_ALLOWED_HEADERS = frozenset({"content-disposition", "content-type"})
FILE = "\0file"
"""The value given to a file part (its content is not a parameter value)."""


def parse_fields(data: bytes, media: MediaType) -> list[tuple[str, str]] | Rejection:
    """(name, value) of every part in order; a file part's value is ``FILE``."""
    boundary = media.params.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        return invalid("the multipart body has no usable boundary")
    if set(media.params) - {"boundary", "charset"}:
        return invalid("the multipart Content-Type has unexpected parameters")
    delimiter = b"--" + boundary.encode()
    problem = _delimiter_problem(data, delimiter)
    if problem:
        return invalid(problem)
    fields: list[tuple[str, str]] = []
    body = data[len(delimiter) + 2 :]
    while True:
        end = body.find(b"\r\n" + delimiter)
        part, rest = body[:end], body[end + 2 + len(delimiter) :]
        field = _field(part)
        if isinstance(field, Rejection):
            return field
        fields.append(field)
        if rest.startswith(b"--"):
            return fields
        body = rest[2:]


def _delimiter_problem(data: bytes, delimiter: bytes) -> str:
    """Every occurrence of the boundary must be a clean delimiter line; the last closes."""
    if not data.startswith(delimiter + b"\r\n"):
        return "the multipart body must start with its boundary (no preamble)"
    position, closed = 0, False
    while (found := data.find(delimiter, position)) != -1:
        if closed:
            return "the multipart body continues after its closing boundary"
        if found and data[found - 2 : found] != b"\r\n":
            return "the multipart boundary appears inside a part"
        after = data[found + len(delimiter) : found + len(delimiter) + 2]
        if after == b"--":
            closed = True
            tail = data[found + len(delimiter) + 2 :]
            if tail not in (b"", b"\r\n"):
                return "the multipart body has data after its closing boundary"
        elif after != b"\r\n":
            return "a multipart boundary line carries extra characters"
        position = found + len(delimiter)
    return "" if closed else "the multipart body is not closed"


def _field(part: bytes) -> tuple[str, str] | Rejection:
    head, separator, content = part.partition(b"\r\n\r\n")
    if not separator:
        return invalid("a multipart part has no header block")
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
        if name not in _ALLOWED_HEADERS or name in headers:
            return invalid(
                f"multipart part headers other than one Content-Disposition and one Content-Type are not accepted ({name[:40]})"
            )
        headers[name] = value.strip()
    disposition = _disposition(headers.get("content-disposition", ""))
    if isinstance(disposition, Rejection):
        return disposition
    name, is_file = disposition
    if is_file:
        return name, FILE
    kind = parse_media_type(headers["content-type"]) if "content-type" in headers else None
    if "content-type" in headers and kind is None:
        return invalid("a multipart part's Content-Type could not be read")
    charset = kind.params.get("charset", "utf-8").lower() if kind else "utf-8"
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        return unsupported("multipart fields must be UTF-8")
    try:
        return name, content.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return invalid("a multipart field is not valid UTF-8")


def _disposition(value: str) -> tuple[str, bool] | Rejection:
    """The field name and whether the part is a file, from ``form-data; name="x"``."""
    head = _DISPOSITION.match(value)
    parsed = parse_media_type("x/y" + value[head.end() :]) if head else None
    if head is None or parsed is None:
        return invalid("a multipart part lacks a readable Content-Disposition: form-data")
    params = parsed.params
    if set(params) - {"name", "filename"} or "name" not in params:
        return invalid("a multipart part must have one name (no name* or filename*)")
    name = params["name"]
    if "\\" in name or '"' in name:
        return invalid("a multipart field name holds quotes or backslashes")
    return name, "filename" in params
