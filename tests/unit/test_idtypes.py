"""One table of id types: routing, object ids and the rules model agree on every type."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from gateway import idtypes
from gateway.config.rules import IdType
from gateway.model import Route, RouteMatch, Target
from gateway.objects import check_id
from gateway.routing import Router

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SAMPLES = [
    "7",
    "0",
    "9" * 18,
    "9" * 19,
    "abc",
    "a-b_c",
    "-abc",
    UUID,
    UUID.upper(),
    "",
    "1/2",
    "x" * 129,
]


@pytest.mark.parametrize("id_type", sorted(idtypes.ID_TYPES))
@pytest.mark.parametrize("value", SAMPLES)
def test_routing_and_object_ids_accept_the_same_values(id_type: str, value: str) -> None:
    router = Router([Route(name="r", pattern=f"/x/{{id:{id_type}}}", methods=None, upstream="u")])
    routed = isinstance(router.match(Target(f"/x/{value}", ""), "GET"), RouteMatch)
    assert routed == check_id(value, id_type) == idtypes.check(value, id_type)


@pytest.mark.parametrize(
    ("value", "id_type", "expected"),
    [
        ("123", "int", True),
        ("1234567890123456789", "int", False),
        ("12a", "int", False),
        (UUID, "uuid", True),
        (UUID[:-1], "uuid", False),
        ("r-acme-1", "slug", True),
        ("_r", "slug", False),
        ("ORD-1234", "regex:ORD-[0-9]{4}", True),
        ("ORD-1234x", "regex:ORD-[0-9]{4}", False),
        ("xORD-1234", "regex:ORD-[0-9]{4}", False),
    ],
)
def test_check_is_a_full_match(value: str, id_type: str, expected: bool) -> None:
    assert idtypes.check(value, id_type) is expected


@pytest.mark.parametrize("id_type", ["path", "", "integer", "regex:(", "regex:[a-"])
def test_an_unknown_or_broken_type_matches_nothing_and_is_a_problem(id_type: str) -> None:
    assert not idtypes.check("7", id_type)
    assert not idtypes.check("abc", id_type)
    assert idtypes.problem(id_type) is not None


@pytest.mark.parametrize("id_type", ["int", "uuid", "slug", "regex:[a-z]+"])
def test_the_rules_model_accepts_what_the_table_knows(id_type: str) -> None:
    assert TypeAdapter(IdType).validate_python(id_type) == id_type
    assert idtypes.problem(id_type) is None
    assert re.fullmatch(idtypes.RULES_PATTERN, id_type)


@pytest.mark.parametrize("id_type", ["integer", "path", "regex:", "UUID"])
def test_the_rules_model_refuses_other_names(id_type: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(IdType).validate_python(id_type)
