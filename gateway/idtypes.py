"""Id types: the one table of what an ``int``, ``uuid`` or ``slug`` id looks like.

Routing matches path parameters with these patterns (``{id:int}``), ``objects`` checks
every extracted id against its resource's type, and the rules model accepts exactly
these names (plus ``regex:<pattern>``, a full match). The loader compiles a ``regex:``
type when the rules load, so a bad pattern is a config problem, never a failed request.
"""

from __future__ import annotations

import functools
import re
from typing import Final

INT: Final = r"[0-9]{1,18}"
UUID: Final = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
SLUG: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"

ID_TYPES: Final = {"int": INT, "uuid": UUID, "slug": SLUG}
"""Named id types, for object ids and typed path parameters alike."""

REGEX_PREFIX: Final = "regex:"

PATH_PARAMETERS: Final = {**ID_TYPES, "": r"[^/]+", "path": r".+"}
"""Path template parameter types: the id types, a plain segment, and the rest of the path."""

RULES_PATTERN: Final = rf"^({'|'.join(ID_TYPES)}|{REGEX_PREFIX}.+)$"
"""What the rules file accepts as a resource's ``id_type``."""


def problem(id_type: str) -> str | None:
    """Why ``id_type`` is not an id type, or ``None`` (for config validation)."""
    if id_type in ID_TYPES:
        return None
    if not id_type.startswith(REGEX_PREFIX):
        return f"unknown id type {id_type!r}; use int, uuid, slug or regex:<pattern>"
    try:
        re.compile(id_type.removeprefix(REGEX_PREFIX))
    except re.error as error:
        return f"{id_type!r} is not a valid regular expression: {error}"
    return None


@functools.lru_cache(maxsize=256)
def _compiled(id_type: str) -> re.Pattern[str] | None:
    if id_type in ID_TYPES:
        return re.compile(ID_TYPES[id_type])
    if problem(id_type) is None:
        return re.compile(id_type.removeprefix(REGEX_PREFIX))
    return None


def check(value: str, id_type: str) -> bool:
    """Whether ``value`` is, in full, an id of ``id_type``; never for an unknown type."""
    compiled = _compiled(id_type)
    return compiled is not None and compiled.fullmatch(value) is not None
