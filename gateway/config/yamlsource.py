"""Where things are in a YAML config file, for problems that point at the line to fix.

Settings and rules both report a problem as ``file:line: field.path: what is wrong —
what to do``. This module is the one place that reads lines from the YAML nodes,
spells a field path (``auth.oidc[0].scopes``), suggests the key someone meant, and
turns pydantic's validation errors into such sentences.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Iterable
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from gateway.errors import ConfigError

Loc = tuple[str | int, ...]
"""A place in a document: mapping keys as strings, sequence positions as integers."""


def read(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """The document in ``text`` and the line of every place in it.

    Raises ``ConfigError`` with the line of a syntax error.
    """
    try:
        data, lines = _load(text)
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        code = error.character if isinstance(error.character, int) else ord("?")
        problem = f"the character U+{code:04X} is not allowed — remove it"
        raise ConfigError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(
            [f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}"]
        ) from None
    return data, lines


def _load(text: str) -> tuple[Any, dict[Loc, int]]:
    """One parse for both: ``yaml.safe_load``'s data, built from the nodes whose lines
    are indexed (parsing twice cost a tenth of a second per rules file)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, line_index(node)


def line_index(node: yaml.Node | None, loc: Loc = ()) -> dict[Loc, int]:
    """The line (from 1) of every place under ``node``; a mapping key's line for a key."""
    index: dict[Loc, int] = {}
    if node is None:
        return index
    index[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            index.update(line_index(value, child))
            index[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, value in enumerate(node.value):
            index.update(line_index(value, (*loc, position)))
    return index


def line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    """The line of ``loc``, or of its nearest parent the file has (a default, say)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def field_path(loc: Iterable[str | int]) -> str:
    """``("auth", "oidc", 0, "scopes")`` → ``auth.oidc[0].scopes``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``; did you mean 'port'?`` for a near miss, else ``; remove it``."""
    suggestion = difflib.get_close_matches(key, sorted(set(known)), n=1)
    return f"; did you mean {suggestion[0]!r}?" if suggestion else "; remove it"


def keys_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys ``root``'s schema allows beside the last one of ``loc``.

    Walks the model's fields, list items and mapping values; empty where the place
    is not a model (a union of models is read as its first member).
    """
    annotation: Any = root
    for part in loc[:-1]:
        annotation = _inner(annotation, part)
        if annotation is None:
            return []
    model = _model_of(annotation)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _inner(annotation: Any, part: str | int) -> Any:
    """The type one step into ``annotation`` at ``part`` (a field, a key or a position)."""
    model = _model_of(annotation)
    if model is not None:
        fields = model.model_fields.items()
        field = next((f for name, f in fields if part in (name, f.alias)), None)
        return None if field is None else field.annotation
    for member in _members(annotation):
        if get_origin(member) in (list, dict):
            return get_args(member)[-1]
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), each without ``Annotated``; or the one type."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return tuple(
        get_args(m)[0] if get_origin(m) is Annotated else m for m in members or (annotation,)
    )


def explain(error: Any, known_keys: Callable[[Loc], Iterable[str]], noun: str = "key") -> str:
    """One pydantic error as a sentence that says what is wrong and what to write instead.

    ``known_keys(loc)`` names the keys allowed beside an unknown one, for suggestions.
    """
    kind, loc, given = error["type"], tuple(error["loc"]), error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown {noun} {loc[-1]!r}{did_you_mean(str(loc[-1]), known_keys(loc))}"
    if kind == "missing":
        return f"required {noun} {loc[-1]!r} is missing — add it"
    if kind == "string_pattern_mismatch":
        return f"{given!r} has the wrong form (expected {ctx['pattern']})"
    if kind == "literal_error":
        return f"{given!r} is not allowed here — write one of {ctx['expected']}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_shown(given)}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{error['msg'][len('Input should be ') :]}, got {_shown(given)}"
    return str(error["msg"])


_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of settings",
    "model_attributes_type": "a mapping of settings",
    "timezone_aware": "a time with its zone (2026-12-01T18:00:00Z, or +02:00 for the Z)",
    "datetime_type": "an ISO 8601 time with its zone (2026-12-01T18:00:00Z)",
    "datetime_parsing": "an ISO 8601 time with its zone (2026-12-01T18:00:00Z)",
    "datetime_from_date_parsing": "an ISO 8601 time with its zone (2026-12-01T18:00:00Z)",
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):  # YAML reads unquoted times as these
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    """A unified diff between two texts of a YAML document (empty when they agree)."""

    def lines(text: str) -> list[str]:
        return (text if not text or text.endswith("\n") else text + "\n").splitlines(True)

    return "".join(difflib.unified_diff(lines(old), lines(new), old_name, new_name))
