"""JSON pointers (RFC 6901) with ``*`` over arrays: the one implementation of the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.jsonpointer import (
    MISSING,
    PointerError,
    parse,
    pointer_values,
    problem,
    unparse,
    walk,
)

# The example document of RFC 6901 section 5.
RFC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", RFC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_every_example_of_rfc_6901_resolves(pointer: str, value: Any) -> None:
    assert pointer_values(RFC, pointer) == [value]


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        ("/a~1b", ("a/b",)),
        ("/m~0n", ("m~n",)),
        ("/~01", ("~1",)),  # ~0 then 1: a literal "~1", not "/"
        ("/~10", ("/0",)),
        ("/x//y", ("x", "", "y")),
    ],
    ids=["~1 is a slash", "~0 is a tilde", "~01 decodes to ~1", "~10 decodes to /0", "empty key"],
)
def test_escapes_are_decoded_in_the_order_the_rfc_gives(pointer: str, tokens: tuple[str]) -> None:
    assert parse(pointer) == tokens


@pytest.mark.parametrize("pointer", ["foo", "/a~2b", "/a~", "/~x/y"])
def test_malformed_pointers_are_refused(pointer: str) -> None:
    with pytest.raises(PointerError):
        parse(pointer)
    assert problem(pointer) is not None


def test_a_star_walks_every_element_of_an_array() -> None:
    document = {"items": [{"tenant": "acme"}, {"tenant": "globex"}, {"other": 1}]}
    assert pointer_values(document, "/items/*/tenant") == ["acme", "globex"]
    assert walk(document, parse("/items/*/tenant")) == ["acme", "globex", MISSING]


def test_a_star_walks_every_member_of_an_object_in_document_order() -> None:
    by_id = {"by_id": {"7": {"tenant": "acme"}, "*": {"tenant": "globex"}, "9": {}}}
    assert walk(by_id, parse("/by_id/*/tenant")) == ["acme", "globex", MISSING]
    assert pointer_values({"*": 1, "a": 2}, "/*") == [1, 2], "a member named * is one of them"


def test_a_star_over_nothing_names_no_place_and_over_a_scalar_a_missing_one() -> None:
    assert walk({"rows": []}, parse("/rows/*/tenant")) == []
    assert walk({"rows": {}}, parse("/rows/*/tenant")) == []
    assert walk({"rows": "globex"}, parse("/rows/*/tenant")) == [MISSING]
    assert walk({"rows": None}, parse("/rows/*")) == [MISSING]


def test_a_numeric_token_indexes_rows_answered_as_arrays() -> None:
    rows = {"columns": ["id", "tenant"], "rows": [[1, "acme"], [2, "globex"], [3]]}
    assert walk(rows, parse("/rows/*/1")) == ["acme", "globex", MISSING]
    assert pointer_values(rows, "/rows/0/1") == ["acme"]
    assert pointer_values({"rows": {"1": "member"}}, "/rows/1") == ["member"], "a name on objects"


def test_nested_stars_and_escapes_combine() -> None:
    document = {"a/b": [{"te~nant": ["x", "y"]}, {"te~nant": ["z"]}]}
    assert pointer_values(document, "/a~1b/*/te~0nant/*") == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [("/list/1", [20]), ("/list/01", []), ("/list/-", []), ("/list/5", [])],
    ids=["index", "leading zero names nothing", "dash names nothing", "past the end"],
)
def test_array_indexes_follow_the_rfc(pointer: str, expected: list[int]) -> None:
    assert pointer_values({"list": [10, 20]}, pointer) == expected


def test_null_is_a_value_and_missing_is_not() -> None:
    assert pointer_values({"a": None}, "/a") == [None]
    assert walk({"a": None}, parse("/b")) == [MISSING]
    assert walk({"a": 1}, parse("/a/b/c")) == [MISSING]


@pytest.mark.parametrize(
    "tokens",
    [(), ("",), ("a/b",), ("m~n",), ("~1",), ("~01", "/~"), ("items", "*", "id"), (" ", "0")],
)
def test_unparse_is_the_inverse_of_parse(tokens: tuple[str, ...]) -> None:
    assert parse(unparse(tokens)) == tokens
    assert unparse(parse(unparse(tokens))) == unparse(tokens)


def test_unparse_escapes_tilde_before_slash() -> None:
    assert unparse(["~1"]) == "/~01"
    assert unparse(["a/b", "m~n"]) == "/a~1b/m~0n"
