"""Rules load into compiled values, and every mistake is reported at once with its line."""

from __future__ import annotations

import pytest

from gateway.config.loader import check_rules_text, load_rules_text
from gateway.errors import ConfigError
from gateway.model import GuardMode, HttpOwner, IdSource, RegistryOwner, SqlOwner

GOOD = """\
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL:-http://127.0.0.1:9001}/", timeout: 5s}
roles:
  standard: {can: [read, write]}
  operator: {can: [read], scope: global}
resources:
  invoice:
    id_type: int
    owner: {http: "GET {upstream}/internal/{id}", tenant_field: /tenant}
    cache: 2m
  doc: {owner: {sql: "SELECT tenant FROM d WHERE id = :id", dsn: "${DSN}"}, negative_cache: 1s}
  report: {owner: {registry: true, learn_on_create: true}}
routes:
  - name: read
    match: {path: "/api/invoices/{invoice_id:int}", methods: [get]}
    upstream: ledger
    resource: {type: invoice, id: path.invoice_id}
    body_ids: [{type: report, pointer: /report}]
    query_ids: [{type: doc, param: doc}]
    form_ids: [{type: doc, field: doc}]
  - name: export
    match: {path: "/api/export", methods: [POST]}
    upstream: ledger
    action: export
    step_up: 10m
    guard: {tenant_field: "/items/*/tenant", mode: filter}
    max_body: 1MiB
  - name: area
    match: {path: "/t/{tenant:slug}/{rest:path}"}
    upstream: ledger
    tenant: path.tenant
    websocket: true
  - name: static
    match: {path: "/static/{rest:path}", methods: [GET]}
    upstream: ledger
    public: true
    file: {disposition: inline}
"""


def test_every_feature_compiles_into_the_right_values() -> None:
    rules = load_rules_text(GOOD, source="rules.yaml", env={"DSN": "sqlite:///x.db"})
    assert rules.upstreams["ledger"].url == "http://127.0.0.1:9001"
    assert rules.upstreams["ledger"].timeout_seconds == 5
    assert rules.roles["operator"].scope_global
    assert isinstance(rules.resources["invoice"].owner, HttpOwner)
    assert rules.resources["invoice"].cache_seconds == 120
    assert rules.resources["doc"].owner == SqlOwner(
        "SELECT tenant FROM d WHERE id = :id", "sqlite:///x.db"
    )
    assert rules.resources["report"].owner == RegistryOwner(learn_on_create=True)
    read, export, area, static = rules.routes
    assert read.methods == frozenset({"GET"})
    assert [(i.source, i.key, i.id_type) for i in read.ids] == [
        (IdSource.PATH, "invoice_id", "int"),
        (IdSource.BODY, "/report", "slug"),
        (IdSource.QUERY, "doc", "slug"),
        (IdSource.FORM, "doc", "slug"),
    ]
    assert export.step_up_seconds == 600 and export.sensitive and export.max_body_bytes == 2**20
    assert export.guard is not None and export.guard.mode is GuardMode.FILTER
    assert area.tenant_param == "tenant" and area.websocket and area.methods is None
    assert static.public and static.file_disposition == "inline"
    assert len(rules.digest) == 64


BROKEN = """\
version: 1
upstreams:
  ledger: {url: "${NOPE}"}
roles:
  standard: {can: [read]}
resources:
  invoice: {owner: {http: "GET {upstream}/x", tenant_field: /tenant}}
routes:
  - name: a
    match: {path: "/a/{id:int}"}
    upstream: ledgr
    resource: {type: invoce, id: path.id}
  - name: b
    match: {path: "/b"}
    upstream: ledger
    public: true
    tenant: path.t
  - name: a
    match: {path: "/.gatehold/x"}
    upstream: ledger
    step_up: soon
"""


def test_a_broken_file_reports_every_problem_with_line_and_advice() -> None:
    with pytest.raises(ConfigError) as raised:
        load_rules_text(BROKEN, source="rules.yaml", env={})
    problems = "\n".join(raised.value.problems)
    expected = [
        "rules.yaml:3: upstreams.ledger.url: environment variable NOPE is not set",
        "rules.yaml:7: resources.invoice.owner: the http lookup URL needs an {id} placeholder",
        "rules.yaml:11: routes[0].upstream: unknown upstream 'ledgr' — define it under",
        "rules.yaml:12: routes[0].resource.type: unknown resource type 'invoce'",
        "rules.yaml:17: routes[1].tenant: path.t names no parameter of /b",
        "rules.yaml:16: routes[1].public: a public route cannot carry object ids, step_up",
        "rules.yaml:19: routes[2].match.path: paths under /.gatehold/ belong to the gateway",
        "rules.yaml:21: routes[2].step_up: 'soon' is not a duration",
        "rules.yaml:18: routes[2].name: route name 'a' is used twice",
    ]
    for line in expected:
        assert line in problems, f"missing: {line}\n--- got:\n{problems}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\n", "unsupported version — write 'version: 1'"),
        ("version: 1\nupstreams: {a: {url: x, tmeout: 1s}}\n", "did you mean 'timeout'?"),
        ("version: 1\n  bad: [\n", "not valid YAML"),
        (
            GOOD.replace("    action: export", "    acton: export"),
            "did you mean 'action'?",
        ),
        (
            "version: 1\nroles: {admin: {can: [read], type: global}}\n",
            "roles.admin.type: unknown key 'type'; remove it",
        ),
        (
            "version: 1\nroutes:\n  - {name: a, upstream: u, match: {path: /, method: [GET]}}\n",
            "r.yaml:3: routes[0].match.method: unknown key 'method'; did you mean 'methods'?",
        ),
    ],
    ids=[
        "an unknown version",
        "a misspelt key",
        "broken YAML",
        "a misspelt route key",
        "a key of another section",
        "in a list entry",
    ],
)
def test_single_mistakes_get_a_plain_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_rules_text(text, source="r.yaml", env={"DSN": "x"})
    assert message in "\n".join(raised.value.problems)


def test_overlapping_routes_are_refused() -> None:
    text = GOOD.replace("name: export", "name: export\n    # dup").replace(
        '"/api/export", methods: [POST]', '"/api/invoices/{invoice_id:int}", methods: [GET, POST]'
    )
    with pytest.raises(ConfigError) as raised:
        load_rules_text(text, source="r.yaml", env={"DSN": "x"})
    assert "match the same paths" in "\n".join(raised.value.problems)


SEVERAL_KINDS = """\
version: 1
upstreams:
  ledger: {url: 'http://127.0.0.1:9', timeout: 30s}
  broken: {url: 'http://x', timeout: 5s, extra: 1}
roles:
  readonly: {can: [read], scope: everywhere}
  member: {can: [read]}
resources:
  invoice:
    owner: {registry: true}
    id_type: int
    cache: forever
routes:
  - name: invoice-list
    match: {path: /api/invoices, methods: [GET]}
    upstream: ledger
    bogus: 1
  - name: invoice
    match: {path: "/api/invoices/{id:int}"}
    upstream: nowhere
    resource: {type: invoice, id: path.id}
  - name: other
    match: {path: "/api/x/{id}"}
    upstream: broken
    resource: {type: missing, id: path.nope}
    max_body: lots
"""


def test_schema_problems_do_not_hide_compile_problems_of_other_parts() -> None:
    """One pass: schema errors (unknown keys, bad enum) AND compile errors (unknown
    upstream, unknown resource, bad duration and size) of the parts that validated."""
    with pytest.raises(ConfigError) as raised:
        load_rules_text(SEVERAL_KINDS, source="rules.yaml", env={})
    assert raised.value.problems == [
        "rules.yaml:4: upstreams.broken.extra: unknown key 'extra'; remove it",
        "rules.yaml:6: roles.readonly.scope: 'everywhere' is not allowed here — write one of "
        "'tenant' or 'global'",
        "rules.yaml:17: routes[0].bogus: unknown key 'bogus'; remove it",
        "rules.yaml:12: resources.invoice.cache: 'forever' is not a duration; write e.g. "
        "500ms, 30s, 10m, 8h or 90d",
        "rules.yaml:20: routes[1].upstream: unknown upstream 'nowhere' — define it under "
        "'upstreams:' or use one of: ledger",
        "rules.yaml:25: routes[2].resource.type: unknown resource type 'missing' — define it "
        "under 'resources:' (invoice)",
        "rules.yaml:25: routes[2].resource.id: path.nope names no parameter of /api/x/{id}",
        "rules.yaml:26: routes[2].max_body: 'lots' is not a size; write e.g. 512KiB, 10MiB or 1GiB",
    ]


def test_problems_come_as_values_with_their_lines() -> None:
    ruleset, problems = check_rules_text(SEVERAL_KINDS, source="draft", env={})
    assert ruleset is None
    assert [p.line for p in problems] == [4, 6, 17, 12, 20, 25, 25, 26]
    assert problems[0].message == "upstreams.broken.extra: unknown key 'extra'; remove it"
    assert str(problems[0]) == "draft:4: upstreams.broken.extra: unknown key 'extra'; remove it"


def test_a_yaml_syntax_error_is_one_problem_with_its_line() -> None:
    ruleset, problems = check_rules_text("version: 1\nroles: [\n", source="draft", env={})
    assert ruleset is None
    assert len(problems) == 1 and problems[0].line == 3
    assert problems[0].message.startswith("not valid YAML")


def test_a_route_naming_a_broken_upstream_is_not_reported_twice() -> None:
    text = GOOD.replace("timeout: 5s}", "timeout: 5s, bogus: 1}")
    _, problems = check_rules_text(text, source="r", env={"DSN": "x"})
    messages = [p.message for p in problems]
    assert messages == ["upstreams.ledger.bogus: unknown key 'bogus'; remove it"]
