"""The rules keys ``query``, ``bind``, ``body_tenant`` and ``query_ids[].required``: compiled,
and every contradiction reported with its line by ``rules check``."""

from __future__ import annotations

from gateway.config.loader import check_rules_text
from gateway.model import BodyTenant, QueryRules, TenantBinding

HEAD = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9001"}
roles:
  standard: {can: [read, write]}
resources:
  row: {id_type: int, owner: {registry: true}}
routes:
"""

VALID = (
    HEAD
    + """\
  - name: list
    match: {path: /rows, methods: [GET]}
    upstream: app
    query: {allow: [page, "sort*", row], deny: [where, "_facet*"], require: [page]}
    bind: {query: {tenant: caller.tenant}, headers: {X-Tenant: caller.tenant}}
    query_ids: [{type: row, param: row, required: true}]
  - name: write
    match: {path: /rows, methods: [POST]}
    upstream: app
    body_tenant: {pointer: /rows/*/tenant, field: tenant, on_missing: refuse}
"""
)


def problems(routes: str) -> list[str]:
    ruleset, found = check_rules_text(HEAD + routes, source="r.yaml", env={})
    assert ruleset is None
    return [str(p) for p in found]


def test_the_keys_compile() -> None:
    ruleset, found = check_rules_text(VALID, source="r.yaml", env={})
    assert found == [] and ruleset is not None
    listing, write = ruleset.routes
    assert listing.query == QueryRules(("page", "sort*", "row"), ("where", "_facet*"), ("page",))
    assert listing.bind == TenantBinding(("tenant",), ("X-Tenant",))
    assert listing.ids[0].required
    assert write.body_tenant == BodyTenant("/rows/*/tenant", "tenant", set_missing=False)
    assert write.query is None and write.bind is None


def test_contradictions_are_reported_with_their_lines() -> None:
    found = problems(
        """\
  - name: list
    match: {path: /rows, methods: [GET]}
    upstream: app
    query: {allow: [page, where], deny: [where, "row*"], require: [q]}
    query_ids: [{type: row, param: row}]
  - name: open
    match: {path: /open, methods: [GET]}
    upstream: app
    public: true
    bind: {query: {tenant: caller.tenant}}
  - name: headers
    match: {path: /h, methods: [GET]}
    upstream: app
    bind: {headers: {X-Gatehold-Tenant: caller.tenant, Cookie: caller.tenant}}
  - name: bodies
    match: {path: /b, methods: [POST]}
    upstream: app
    body_tenant: {on_missing: set}
  - name: star
    match: {path: /s, methods: [POST]}
    upstream: app
    body_tenant: {pointer: /rows/*}
"""
    )
    text = "\n".join(found)
    assert "r.yaml:12: routes[0].query: where is both allowed and denied" in text
    assert "routes[0].query.require[0]: 'q' is required but refused" in text
    assert "r.yaml:13: routes[0].query_ids[0].param: 'row' is refused by 'query'" in text
    assert "r.yaml:17: routes[1].public: a public route has no tenant to bind" in text
    assert "routes[2].bind.headers.X-Gatehold-Tenant: 'X-Gatehold-Tenant' is set by" in text
    assert "routes[2].bind.headers.Cookie" in text
    assert "routes[3].body_tenant: give 'pointer'" in text
    assert "routes[4].body_tenant.pointer: the pointer must end in a field name" in text


def test_values_other_than_the_callers_tenant_and_bad_names_are_schema_errors() -> None:
    text = "\n".join(
        problems(
            """\
  - name: list
    match: {path: /rows, methods: [GET]}
    upstream: app
    bind: {query: {tenant: "globex"}}
    query: {deny: ["tenant?"]}
    body_tenant: {pointer: tenant, on_missing: maybe}
"""
        )
    )
    assert "routes[0].bind.query.tenant" in text
    assert "routes[0].query.deny[0]" in text
    assert "routes[0].body_tenant.pointer" in text
    assert "routes[0].body_tenant.on_missing" in text
