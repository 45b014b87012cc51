"""JSON pointers (RFC 6901) with one extension: a ``*`` token walks every element or member.

The one implementation for every pointer in the rules: body ids (``objects``), the
tenant field of an owner lookup (``ownership``) and the response guard (``guard``).

* ``~1`` stands for ``/`` and ``~0`` for ``~``, decoded in that order; any other ``~``
  makes the pointer invalid (``PointerError``), caught when the rules are loaded.
* ``*`` stands for each element of an array and for each member value of an object
  (in document order), so ``/rows/*/1`` reaches the second cell of rows answered as
  arrays and ``/by_id/*/tenant`` the tenant of every entry of an object keyed by id.
  A member literally named ``*`` is one of those members; it cannot be named alone.
* A numeric token indexes an array (``0``, ``12``; no leading zeros, so ``01`` and
  ``-`` name nothing; RFC 6901's ``-`` is the element after the last, which no answer
  holds). On an object the same token is a member name (``{"0": ...}``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Final

WILDCARD: Final = "*"
_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


class PointerError(ValueError):
    """A pointer that RFC 6901 does not allow."""


class _Missing:
    """Marks a place the pointer names but the document does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@functools.lru_cache(maxsize=1024)
def parse(pointer: str) -> tuple[str, ...]:
    """The decoded reference tokens of ``pointer``; ``""`` is the whole document."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} must start with '/'")
    if _BAD_ESCAPE.search(pointer):
        raise PointerError(f"{pointer!r}: '~' must be followed by 0 or 1 (write ~0 for '~')")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def unparse(tokens: Iterable[str]) -> str:
    """The pointer whose tokens are ``tokens`` (the inverse of ``parse``)."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def problem(pointer: str) -> str | None:
    """Why ``pointer`` is not valid, or ``None`` (for config validation)."""
    try:
        parse(pointer)
    except PointerError as error:
        return str(error)
    return None


def pointer_values(document: Any, pointer: str) -> list[Any]:
    """The values found at ``pointer``; places the document lacks are left out."""
    return [v for v in walk(document, parse(pointer)) if v is not MISSING]


def walk(document: Any, tokens: tuple[str, ...]) -> list[Any]:
    """Every place ``tokens`` name, in document order; ``MISSING`` where one is absent.

    A ``*`` over an empty array or object names no place at all (it has no items); a
    ``*`` over a scalar names one place the document lacks.
    """
    nodes: list[Any] = [document]
    for token in tokens:
        found: list[Any] = []
        for node in nodes:
            if node is MISSING:
                found.append(MISSING)
            elif token == WILDCARD and isinstance(node, list):
                found.extend(node)
            elif token == WILDCARD and isinstance(node, dict):
                found.extend(node.values())
            else:
                found.append(child(node, token))
        nodes = found
    return nodes


def child(node: Any, token: str) -> Any:
    """The member or element ``token`` of ``node``, or ``MISSING`` (``*`` not expanded)."""
    if isinstance(node, dict):
        return node.get(token, MISSING)
    if isinstance(node, list) and (index := array_index(token)) is not None and index < len(node):
        return node[index]
    return MISSING


def array_index(token: str) -> int | None:
    """The array index ``token`` stands for (``0``, ``12``), or ``None`` (``01``, ``-``, ``a``)."""
    return int(token) if _INDEX.fullmatch(token) else None
