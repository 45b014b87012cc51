"""Rules keys that decide ownership: ``creates`` and every JSON pointer, checked at load."""

from __future__ import annotations

import pytest

from gateway.config.loader import load_rules_text
from gateway.errors import ConfigError

RULES = """\
version: 1
upstreams:
  app: {{url: "http://127.0.0.1:9001"}}
roles:
  standard: {{can: [read, write]}}
resources:
  report: {{owner: {{registry: true, learn_on_create: true}}}}
  note: {{owner: {{registry: true}}}}
  invoice: {{owner: {{http: "GET {{upstream}}/i/{{id}}", tenant_field: "{owner_pointer}"}}}}
routes:
  - name: create
    match: {{path: "/api/things", methods: [POST]}}
    upstream: app
    creates: {creates}
    body_ids: [{{type: invoice, pointer: "{body_pointer}"}}]
  - name: list
    match: {{path: "/api/things", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "{guard_pointer}", mode: {mode}}}
"""

VALID = {
    "creates": "report",
    "owner_pointer": "/tenant",
    "body_pointer": "/a~1b/*",
    "guard_pointer": "/items/*/te~0nant",
    "mode": "filter",
}


def load(**changes: str) -> None:
    load_rules_text(RULES.format(**(VALID | changes)), source="r.yaml", env={})


def test_valid_keys_compile() -> None:
    rules = load_rules_text(RULES.format(**VALID), source="r.yaml", env={})
    assert rules.routes[0].creates == "report"
    assert rules.routes[1].creates is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"creates": "reprot"}, "r.yaml:14: routes[0].creates: unknown resource type 'reprot'"),
        ({"creates": "note"}, "routes[0].creates: resource 'note' does not learn owners"),
        ({"creates": "invoice"}, "routes[0].creates: resource 'invoice' does not learn owners"),
        ({"owner_pointer": "/te~2nant"}, "resources.invoice.owner.tenant_field: '/te~2nant'"),
        ({"body_pointer": "/a~"}, "routes[0].body_ids[0].pointer: '/a~'"),
        ({"guard_pointer": "/items/~x"}, "routes[1].guard.tenant_field: '/items/~x'"),
        ({"guard_pointer": "/items/0/tenant"}, "has no '*': filter mode drops items"),
    ],
    ids=[
        "creates names an unknown resource",
        "creates names a registry resource that does not learn",
        "creates names an http resource",
        "a bad escape in an owner lookup pointer",
        "a bad escape in a body id pointer",
        "a bad escape in a guard pointer",
        "a filter guard with nothing to filter",
    ],
)
def test_mistakes_are_reported_with_line_and_advice(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(**changes)
    problems = "\n".join(raised.value.problems)
    assert message in problems, problems


def test_a_block_guard_needs_no_star() -> None:
    load(guard_pointer="/tenant", mode="block")
