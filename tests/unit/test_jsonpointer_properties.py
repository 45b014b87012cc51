"""Property tests: the pointer walk against a plain recursive reading of RFC 6901.

The reference below is written from the RFC and the one extension (``*`` is every
element of an array and every member of an object), independently of
``gateway.jsonpointer``; hypothesis draws documents and pointers, many of them made of
tokens the document actually has, so both found and missing places are exercised.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guard import drop_foreign, foreign_values, strip_fields
from gateway.jsonpointer import MISSING, parse, pointer_values, unparse, walk

KEYS = st.sampled_from(["a", "b", "tenant", "0", "1", "01", "-", "*", "a/b", "m~n", "~1", ""])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["acme", "globex"])
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
TOKENS = st.lists(KEYS | st.sampled_from(["2", "3", "00", "1e0", " 1", "+1"]), max_size=5)


def reference(node: Any, tokens: list[str]) -> list[Any]:
    """RFC 6901 evaluation, with ``*`` expanded; ``MISSING`` for an absent place."""
    if not tokens:
        return [node]
    head, rest = tokens[0], tokens[1:]
    if head == "*" and isinstance(node, list | dict):
        items = node if isinstance(node, list) else list(node.values())
        return [found for item in items for found in reference(item, rest)]
    if isinstance(node, dict) and head in node:
        return reference(node[head], rest)
    if isinstance(node, list) and _rfc_index(head) is not None:
        index = _rfc_index(head)
        if index is not None and index < len(node):
            return reference(node[index], rest)
    return [MISSING]


def _rfc_index(token: str) -> int | None:
    """``array-index = %x30 / ( %x31-39 *(%x30-39) )``: ASCII digits, no leading zero."""
    digits = token.isascii() and token.isdigit()
    if digits and (token == "0" or not token.startswith("0")):
        return int(token)
    return None


@settings(max_examples=400)
@given(DOCUMENTS, TOKENS)
def test_the_walk_agrees_with_the_reference(document: Any, tokens: list[str]) -> None:
    assert walk(document, tuple(tokens)) == reference(document, tokens)
    pointer = unparse(tokens)
    assert parse(pointer) == tuple(tokens)
    expected = [v for v in reference(document, tokens) if v is not MISSING]
    assert pointer_values(document, pointer) == expected


@given(st.lists(st.text(max_size=6), max_size=5))
def test_any_token_survives_escaping(tokens: list[str]) -> None:
    assert parse(unparse(tokens)) == tuple(tokens)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every concrete place in ``node`` with its tokens (indexes as decimal strings)."""
    found = [(prefix, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, str(index)))
    return found


@given(DOCUMENTS, st.data())
def test_a_pointer_to_a_place_the_document_has_finds_exactly_its_value(
    document: Any, data: st.DataObject
) -> None:
    nameable = [(tokens, value) for tokens, value in _paths(document) if "*" not in tokens]
    tokens, value = data.draw(st.sampled_from(nameable))  # a member named * is not alone
    assert pointer_values(document, unparse(tokens)) == [value]


TENANTS = st.sampled_from(["acme", "globex", None, 1])
ROW = st.fixed_dictionaries({"id": st.integers(0, 9)}, optional={"tenant": TENANTS})
ROWS = st.lists(ROW, max_size=8) | st.dictionaries(st.sampled_from("pqrstu"), ROW, max_size=6)


@given(ROWS)
def test_filtering_leaves_only_the_tenants_rows_in_their_order(rows: Any) -> None:
    document = {"rows": rows, "total": 99}
    before = list(rows.values() if isinstance(rows, dict) else rows)
    removed = drop_foreign(document, "/rows/*/tenant", "acme")
    after = list(document["rows"].values() if isinstance(rows, dict) else document["rows"])
    assert foreign_values(document, "/rows/*/tenant", "acme") == []
    assert after == [row for row in before if row.get("tenant") == "acme"]
    assert removed == len(before) - len(after)


@given(st.dictionaries(KEYS, SCALARS, max_size=8), st.sets(KEYS, max_size=4))
def test_stripping_keeps_only_allowed_members(document: dict[str, Any], allow: set[str]) -> None:
    original = dict(document)
    removed = strip_fields(document, allow)
    assert set(document) <= allow
    assert document == {k: v for k, v in original.items() if k in allow}
    assert sorted(removed) == sorted(set(original) - allow)
