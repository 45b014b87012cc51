"""What a value looks like: the id types of the rules format, seen from the outside.

``gateway.idtypes`` says what an ``int``, ``uuid`` or ``slug`` *is*; this module says
which of them a value seen in a log most probably is an id of, and which values are
words (``export``, ``recent``, ``v2``) rather than ids.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from gateway.idtypes import check

IdType = Literal["int", "uuid", "slug"]

_VERSION: Final = re.compile(r"v[0-9]{1,3}(?:\.[0-9]{1,3})?", re.IGNORECASE)
"""``v1``, ``V2``, ``v1.1``: API versions, words rather than ids."""
_HEX: Final = re.compile(r"[0-9a-fA-F]{16,}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{20,}")
_WORD_WITH_DIGITS: Final = re.compile(r"[A-Za-z]+[0-9]{1,2}")
"""``oauth2``, ``s3``, ``md5``, ``page2``: names that hold a digit or two, not ids."""
_SUFFIX: Final = re.compile(r"(?P<core>.+?)(?P<suffix>\.[A-Za-z][A-Za-z0-9]{0,7})")
"""An id followed by a file extension: ``7.json``, ``r-acme-1.pdf``."""

NARROWEST: Final[tuple[IdType, ...]] = ("int", "uuid", "slug")


def id_type_of(value: str) -> IdType | None:
    """The id type ``value`` is most probably an id of, or ``None`` for a word.

    Digits are an ``int``, a UUID a ``uuid``; a slug counts as an id only when it does
    not read as a word: it holds digits and letters in a shape words rarely take
    (``r-acme-1``, ``a1b2c3d4``), or is a long hex string or token.
    """
    if check(value, "int"):
        return "int"
    if check(value, "uuid"):
        return "uuid"
    if not check(value, "slug"):
        return None
    if _VERSION.fullmatch(value) or _WORD_WITH_DIGITS.fullmatch(value):
        return None
    has_digit = any(c.isdigit() for c in value)
    has_letter = any(c.isalpha() for c in value)
    if _HEX.fullmatch(value) and has_digit:
        return "slug"
    if has_digit and has_letter and (len(value) >= 6 or "-" in value or "_" in value):
        return "slug"
    if _TOKEN.fullmatch(value) and has_digit:
        return "slug"
    return None


def split_suffix(segment: str) -> tuple[str, str]:
    """``("7", ".json")`` for ``7.json`` when the part before the extension is an id;
    ``(segment, "")`` otherwise (``report.pdf`` is a file name, not an id)."""
    found = _SUFFIX.fullmatch(segment)
    if found is None or id_type_of(found["core"]) is None:
        return segment, ""
    return found["core"], found["suffix"]


def widest(types: set[str]) -> str:
    """One path parameter type for values of several id types: the narrowest type
    every value fits (an ``int`` and a slug id are both slugs)."""
    if len(types) == 1:
        return next(iter(types))
    if types <= {"int", "uuid", "slug"}:
        return "slug"
    return ""


def fits(value: str, id_type: str) -> bool:
    """Whether ``value`` is an id of ``id_type`` (``""``: any segment)."""
    return id_type == "" or check(value, id_type)
