"""File names that cross the gateway: read from a header, sanitized, offered (RFC 6266).

``sanitize_filename`` is the one sanitizer for every name the gateway passes on or
keeps, whoever chose it (an upstream's ``Content-Disposition``, a path segment, an
upload). A sanitized name is a single path segment that a browser, a shell or a
Windows, macOS or Linux file system takes literally: no directories, no control or
invisible formatting characters (NUL, bidi overrides that turn ``exe.txt`` into
``txt.exe`` on screen), no leading dot (hidden files, ``..``), no Windows device name
(``CON``, ``NUL.txt``, ``COM1.log``) and no trailing dot or space (which Windows drops,
changing the name), within a byte budget with its extension kept. Sanitizing twice
changes nothing.

``disposition_filename`` reads an upstream's header with the standard library's MIME
parameter parser (``email.message.Message.get_params``, the documented successor of
``cgi.parse_header``): quoted-string escapes, RFC 2231/8187 ``filename*`` with its
charset and continuations. ``filename*`` wins when both are given (RFC 6266 §4.3).
"""

from __future__ import annotations

import unicodedata
from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import quote

__all__ = [
    "DEFAULT_NAME",
    "MAX_NAME_BYTES",
    "content_disposition",
    "disposition_filename",
    "sanitize_filename",
]

DEFAULT_NAME = "download"
MAX_NAME_BYTES = 200
"""UTF-8 bytes of a sanitized name: under every common file system's 255, with room for
the `` (1)`` a browser adds to a name already in the downloads folder."""
_MAX_EXTENSION_BYTES = 16
"""A longer "extension" is part of the name, cut like the rest of it."""
_MIN_BUDGET = 2 * _MAX_EXTENSION_BYTES

_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789"}
)
"""Windows device names: reserved with any extension (``nul.tar.gz``), in any case."""
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
"""Characters no Windows file name may hold (``:`` also opens an NTFS stream)."""
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls (NUL, DEL, C1), format characters (bidi controls U+202A-E, U+2066-9,
U+200E/F, zero widths, BOM), lone surrogates, private use, unassigned, line breaks."""


def sanitize_filename(
    name: str, *, max_bytes: int = MAX_NAME_BYTES, default: str = DEFAULT_NAME
) -> str:
    """``name`` made safe to offer or to store as one file name; ``default`` when
    nothing of it is left.

    Compatibility forms are folded first (NFKC): the full-width ``／`` and ``＼`` that
    Windows' best-fit conversion turns into real separators are removed like them.
    """
    if max_bytes < _MIN_BUDGET:
        raise ValueError(f"max_bytes must be at least {_MIN_BUDGET}")
    text = unicodedata.normalize("NFKC", name)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKC", "".join(map(_safe_char, text)))
    text = _fit(text.strip(" ."), max_bytes)
    if _is_device(text):
        text = _fit("_" + text, max_bytes)
    return text or default


def _safe_char(char: str) -> str:
    """``char`` as it may stand in a file name: kept, ``_`` or ``""``."""
    if char == "/" or unicodedata.category(char) in _DROPPED_CATEGORIES:
        return ""
    if char in _WINDOWS_FORBIDDEN:
        return "_"
    return " " if char.isspace() else char


def _fit(name: str, budget: int) -> str:
    """``name`` cut to ``budget`` UTF-8 bytes, its extension kept, no trailing dot or
    space. ``name`` starts with neither, so something of it is always left."""
    if len(name.encode()) > budget:
        stem, dot, extension = name.rpartition(".")
        suffix = dot + extension
        if not stem or len(suffix.encode()) > _MAX_EXTENSION_BYTES:
            stem, suffix = name, ""
        room = budget - len(suffix.encode())
        name = stem.encode()[:room].decode("utf-8", "ignore") + suffix
    return name.rstrip(" .")


def _is_device(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in _DEVICES


def disposition_filename(header: str) -> str | None:
    """The file name a ``Content-Disposition`` value offers, unsanitized; ``None`` when
    it offers none. ``filename*`` is preferred to ``filename``."""
    message = Message()
    message["Content-Disposition"] = header
    params = message.get_params(header="content-disposition") or []
    # RFC 2231 values come back as (charset, language, text) tuples, whatever the stubs say.
    values: list[object] = [value for key, value in params[1:] if key == "filename"]
    extended = [value for value in values if isinstance(value, tuple)]
    if extended:
        return collapse_rfc2231_value(extended[0])
    plain = [value for value in values if isinstance(value, str) and value]
    return plain[0] if plain else None


def content_disposition(disposition: str, filename: str) -> str:
    """``disposition`` with ``filename`` sanitized: an ASCII ``filename`` for old clients
    and the exact name as RFC 8187 ``filename*`` (UTF-8, percent-encoded)."""
    name = sanitize_filename(filename)
    fallback = sanitize_filename(_ascii(name))
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _ascii(name: str) -> str:
    """``name`` in printable ASCII: accents dropped, anything else ``_``.

    ``%`` becomes ``_`` too: some browsers percent-decode a plain ``filename``.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in bare)
