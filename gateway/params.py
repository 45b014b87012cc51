"""Parameter names as frameworks read them: one normalisation for query, form and JSON.

Frameworks do not agree on what a parameter name is. PHP turns ``.``, space and an
unclosed ``[`` into ``_`` and reads ``a[]``/``a[0]``/``a[b]`` as arrays; Rails nests
``a[b]``; ASP.NET binds ``a.b`` and ignores case; Go's JSON decoder matches keys
without regard to case; older Rack splits forms on ``;``. A gateway that checks the
name ``invoice_id`` exactly would forward ``Invoice_Id``, ``invoice_id[]`` or
``invoice.id`` unchecked while the app reads each of them as ``invoice_id``.

So every key is reduced to the *paths* those frameworks may read it as (percent-decoded,
cut at NUL, trimmed, case-folded, PHP's replacements, brackets and dots as nesting), and
a checked name is accepted only when written exactly; any other key whose paths reach
a checked name is ambiguous and refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from gateway.jsonpointer import WILDCARD
from gateway.jsonpointer import parse as parse_pointer

Path = tuple[str, ...]
"""A path segment that stands for any array index (``[]``, ``[0]``; ``*`` in a pointer)."""

_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_PHP_MANGLED = re.compile(r"[ .\[]")


@dataclass(frozen=True, slots=True)
class Name:
    """A parameter name a route checks, in the forms it is written and compared in."""

    exact: Path
    """Segments as written (``order[items][][thing]`` → order, items, *, thing)."""
    folded: Path
    """The same, normalised as every key is before comparing."""


def fold_segment(segment: str) -> str:
    """One segment as frameworks compare it: cut at NUL, trimmed, case-folded.

    Compatibility forms (fullwidth letters) are folded too; ASCII is left as it is.
    """
    segment = segment.split("\0", 1)[0].strip()
    if not segment.isascii():
        segment = unicodedata.normalize("NFKC", segment)
    return segment.casefold()


def _decoded(key: str) -> str:
    """Percent-decode until stable (at most three rounds): double encoding is read by some."""
    for _ in range(3):
        once = unquote(key, errors="replace")
        if once == key:
            break
        key = once
    return key


def split_brackets(key: str) -> tuple[str, Path]:
    """``a[b][]`` → (``a``, (``b``, ``*``)); an unclosed ``[`` stays in the base."""
    start = key.find("[")
    if start <= 0:
        return key, ()
    segments: list[str] = []
    position = start
    while (found := _BRACKET.match(key, position)) is not None:
        inner = found.group(1)
        segments.append(WILDCARD if inner == "" or inner.isdigit() else inner)
        position = found.end()
    if not segments:
        return key, ()
    return key[:start], tuple(segments)


def key_paths(key: str) -> tuple[Path, ...]:
    """Every folded path a framework may read ``key`` (already decoded once) as."""
    text = fold_segment(_decoded(key))
    base, nested = split_brackets(text)
    rest = tuple(s if s == WILDCARD else fold_segment(s) for s in nested)
    paths = [(_PHP_MANGLED.sub("_", base.lstrip()), *rest)]
    if "." in base:
        paths.append((*(fold_segment(part) for part in base.split(".")), *rest))
    return tuple(paths)


def name_from_key(key: str) -> Name:
    """The checked name of a query or form field written as ``key`` in the rules."""
    base, nested = split_brackets(key)
    return Name((base, *nested), key_paths(key)[0])


def name_from_pointer(pointer: str) -> Name:
    """The checked name of a JSON pointer (``/order/items/*/thing``)."""
    raw = list(parse_pointer(pointer))
    folded = [s if s == WILDCARD else fold_segment(s) for s in raw]
    if folded:
        folded[0] = _PHP_MANGLED.sub("_", folded[0])
    return Name(tuple(raw), tuple(folded))


def _reaches(path: Path, name: Path) -> bool:
    """Whether ``path`` is ``name`` or lies inside it (``a[]`` lies inside ``a``)."""
    if len(path) < len(name):
        return False
    return all(n == WILDCARD or p == WILDCARD or n == p for n, p in zip(name, path, strict=False))


def related(key: str, name: Name) -> bool:
    """Whether some framework may read ``key`` as ``name`` or as part of it."""
    return any(_reaches(path, name.folded) for path in key_paths(key))


def exact(key: str, name: Name) -> bool:
    """Whether ``key`` spells ``name`` exactly as written (array indexes may vary)."""
    base, nested = split_brackets(key)
    path = (base, *nested)
    if len(path) != len(name.exact):
        return False
    return all(
        n == p or (n == WILDCARD and p == WILDCARD) for n, p in zip(name.exact, path, strict=True)
    )


class Unreadable(ValueError):
    """A query or form that is not valid UTF-8 after percent-decoding."""


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``&``-separated pairs, ``+`` as space, strict UTF-8; raises ``Unreadable``."""
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Unreadable("the parameters are not valid UTF-8") from None


def semicolon_keys(text: str) -> Iterable[str]:
    """Keys a parser that also splits on ``;`` (older Rack, CGI) finds that ``&`` hides."""
    for pair in text.split("&"):
        if ";" in pair:
            for piece in pair.split(";")[1:]:
                yield unquote(piece.split("=", 1)[0].replace("+", " "), errors="replace")


def ambiguous_key(keys: Iterable[str], names: Sequence[Name]) -> str | None:
    """The first key that reaches a checked name without spelling it exactly."""
    for key in keys:
        for name in names:
            if related(key, name) and not exact(key, name):
                return key
    return None
