"""``guard.fields`` and a guard without ``tenant_field`` in the rules: what compiles and
what ``rules check`` reports (with line and advice)."""

from __future__ import annotations

import pytest

from gateway.config.loader import load_rules_text
from gateway.errors import ConfigError
from gateway.model import FieldAllowance, GuardMode, GuardSpec

RULES = """\
version: 1
upstreams:
  app: {{url: "http://127.0.0.1:9"}}
roles:
  standard: {{can: [read]}}
routes:
  - name: listing
    match: {{path: "/api/rows", methods: [GET]}}
    upstream: app
    guard: {guard}
"""


def guard_of(text: str) -> GuardSpec | None:
    rules = load_rules_text(RULES.format(guard=text), source="r.yaml", env={})
    return rules.routes[0].guard


def problems_of(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        guard_of(text)
    return "\n".join(raised.value.problems)


def test_fields_alone_compile_with_the_whole_answer_as_their_place() -> None:
    assert guard_of("{fields: {allow: [rows, columns]}}") == GuardSpec(
        None, GuardMode.BLOCK, FieldAllowance(frozenset({"rows", "columns"}), "")
    )


def test_fields_and_a_tenant_pointer_compile_together() -> None:
    guard = guard_of(
        '{tenant_field: "/rows/*/1", mode: filter, fields: {allow: [rows], at: /page}}'
    )
    assert guard == GuardSpec(
        "/rows/*/1", GuardMode.FILTER, FieldAllowance(frozenset({"rows"}), "/page")
    )


def test_fields_may_strip_every_row_through_a_star() -> None:
    guard = guard_of('{fields: {allow: [id, name], at: "/rows/*"}}')
    assert guard is not None and guard.fields == FieldAllowance(
        frozenset({"id", "name"}), "/rows/*"
    )


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        ("{mode: block}", "routes[0].guard: a guard needs tenant_field, fields, or both"),
        ("{fields: {allow: [rows]}, mode: filter}", "guard.mode: filter mode needs a tenant_field"),
        ('{fields: {allow: [rows], at: "/"}}', "guard.fields.at: '/' names the member"),
        ('{fields: {allow: [rows], at: "/a~2"}}', "guard.fields.at: '/a~2'"),
        ("{fields: {allow: []}}", "guard.fields.allow"),
        ('{fields: {allow: [rows], at: "rows"}}', "guard.fields.at"),
        ("{fields: {allow: [rows], keep: [x]}}", "keep"),
    ],
    ids=[
        "a guard with nothing to do",
        "filter without a pointer",
        "a slash meant as the whole answer",
        "a bad escape",
        "nothing allowed",
        "not a pointer",
        "an unknown key",
    ],
)
def test_mistakes_are_reported(guard: str, message: str) -> None:
    problems = problems_of(guard)
    assert message in problems, problems
    assert "r.yaml:" in problems, "with the line of the rules file"
