"""Lints of valid rule sets: each fires on a minimal rules text, none on the demo rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config import yamlsource
from gateway.config.lints import (
    DOWNLOAD_WITHOUT_FILE,
    FILTER_WITHOUT_WILDCARD,
    RESOURCE_UNUSED,
    SHADOWED,
    UNKNOWN_CODE,
    WRITES_UNCHECKED,
    Lint,
    check_and_lint_file,
    lint,
)
from gateway.config.loader import check_rules_text, load_rules_text
from gateway.model import GuardMode, GuardSpec

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "rules" / "demo.yaml"
ENV = {"LEDGER_URL": "http://127.0.0.1:9", "LEDGER_DB_DSN": "sqlite:///unused.db"}

HEAD = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  standard: {can: [read, write, delete]}
resources:
  invoice:
    id_type: int
    owner: {http: "GET {upstream}/owner/{id}", tenant_field: /tenant}
routes:
"""
INVOICE_READ = """\
  - name: invoice-read
    match: {path: "/api/invoices/{id:int}", methods: [GET]}
    upstream: app
    resource: {type: invoice, id: path.id}
"""


def lints_of(routes: str, head: str = HEAD) -> list[Lint]:
    text = head + routes
    ruleset, problems = check_rules_text(text, source="rules.yaml", env={})
    assert ruleset is not None, [str(p) for p in problems]
    _, lines = yamlsource.read(text, "rules.yaml")
    return lint(ruleset, lines)


def codes(found: list[Lint]) -> list[tuple[int | None, str]]:
    return [(item.line, item.code) for item in found]


def test_the_demo_rules_trip_no_lint() -> None:
    report = check_and_lint_file(DEMO, ENV)
    assert report.problems == []
    assert report.lints == []


def test_a_catch_all_takes_the_methods_the_id_checked_route_does_not_name() -> None:
    # Listed first, but routing is most-specific-first: GET still reaches invoice-read,
    # while POST, DELETE... of /api/invoices/7 go to the catch-all, unchecked.
    found = lints_of(
        """\
  - name: everything
    match: {path: "/api/{rest:path}"}
    upstream: app
    public: true
"""
        + INVOICE_READ
    )
    assert codes(found) == [(11, SHADOWED)]
    message = found[0].message
    assert "route 'everything' (line 11)" in message
    assert "route 'invoice-read' (line 15)" in message
    assert "/api/invoices/7" in message
    assert "DELETE" in message and "POST" in message and "GET," not in message


def test_a_catch_all_limited_to_the_checked_methods_shadows_nothing() -> None:
    found = lints_of(
        """\
  - name: reads
    match: {path: "/api/{rest:path}", methods: [GET]}
    upstream: app
"""
        + INVOICE_READ
    )
    assert found == []


def test_a_more_specific_route_takes_requests_ahead_of_the_check() -> None:
    # /api/{kind}/{id:int} checks invoices; /api/invoices/{x:slug} has more literals, so
    # it wins GET /api/invoices/7 and nothing is checked.
    found = lints_of(
        """\
  - name: by-kind
    match: {path: "/api/{kind}/{id:int}", methods: [GET]}
    upstream: app
    resource: {type: invoice, id: path.id}
  - name: invoice-slugs
    match: {path: "/api/invoices/{x:slug}", methods: [GET]}
    upstream: app
"""
    )
    assert codes(found) == [(15, SHADOWED)]
    assert "ahead of its check (GET, HEAD)" in found[0].message


def test_a_literal_endpoint_beside_an_id_route_is_not_shadowing() -> None:
    found = lints_of(
        INVOICE_READ
        + """\
  - name: invoice-summary
    match: {path: "/api/invoices/summary", methods: [GET]}
    upstream: app
"""
    )
    assert found == []


def test_a_catch_all_over_a_tenant_path_is_reported() -> None:
    found = lints_of(
        """\
  - name: tenant-reads
    match: {path: "/t/{tenant:slug}/{rest:path}", methods: [GET]}
    upstream: app
    tenant: path.tenant
  - name: anything
    match: {path: "/{rest:path}", methods: [GET, POST]}
    upstream: app
    ignore_lints: [writes-unchecked]
""",
        HEAD.split("resources:")[0] + "routes:\n",
    )
    assert codes(found) == [(11, SHADOWED)]
    assert "takes POST requests" in found[0].message


@pytest.mark.parametrize("methods", ["[POST]", "[PUT, GET]", "[PATCH]", "[DELETE]", None])
def test_a_write_without_ids_or_tenant_is_reported(methods: str | None) -> None:
    match = '{path: "/api/invoices"' + (f", methods: {methods}" if methods else "") + "}"
    found = lints_of(f"  - name: create\n    match: {match}\n    upstream: app\n" + INVOICE_READ)
    assert codes(found) == [(11, WRITES_UNCHECKED)]
    assert "writes without an object or tenant check" in found[0].message


@pytest.mark.parametrize(
    "extra",
    [
        "    public: true\n",
        "    body_ids: [{type: invoice, pointer: /related}]\n",
        "    query_ids: [{type: invoice, param: invoice}]\n",
        "    form_ids: [{type: invoice, field: invoice}]\n",
        "    ignore_lints: [writes-unchecked]\n",
    ],
)
def test_a_write_that_checks_or_is_public_or_accepted_is_not_reported(extra: str) -> None:
    routes = '  - name: create\n    match: {path: "/api/x", methods: [POST]}\n    upstream: app\n'
    assert lints_of(routes + extra + INVOICE_READ) == []


def test_a_write_naming_the_tenant_in_its_path_is_not_reported() -> None:
    routes = """\
  - name: tenant-write
    match: {path: "/t/{tenant:slug}/invoices", methods: [POST]}
    upstream: app
    tenant: path.tenant
"""
    assert lints_of(routes + INVOICE_READ) == []


def test_a_read_without_ids_is_not_a_write() -> None:
    routes = (
        '  - name: list\n    match: {path: "/api/invoices", methods: [GET]}\n    upstream: app\n'
    )
    assert lints_of(routes + INVOICE_READ) == []


def test_a_resource_no_route_uses_is_reported() -> None:
    head = HEAD.replace(
        "routes:\n",
        "  report:\n    owner: {registry: true}\nroutes:\n",
    )
    found = lints_of(INVOICE_READ, head)
    assert codes(found) == [(10, RESOURCE_UNUSED)]
    assert "resource 'report'" in found[0].message


def test_a_resource_used_only_by_creates_counts_as_used() -> None:
    head = HEAD.replace(
        "routes:\n",
        "  report:\n    owner: {registry: true, learn_on_create: true}\nroutes:\n",
    )
    routes = """\
  - name: report-create
    match: {path: "/api/reports", methods: [POST]}
    upstream: app
    creates: report
    ignore_lints: [writes-unchecked]
"""
    assert lints_of(INVOICE_READ + routes, head) == []


def test_a_filter_guard_without_a_wildcard_is_refused_by_the_loader_and_linted() -> None:
    routes = """\
  - name: list
    match: {path: "/api/invoices", methods: [GET]}
    upstream: app
    guard: {tenant_field: /tenant, mode: filter}
"""
    _, problems = check_rules_text(HEAD + routes + INVOICE_READ, source="r.yaml", env={})
    assert any("has no '*'" in str(problem) for problem in problems)
    # Should the loader ever accept one (say, a new pointer form), the lint still says so.
    valid = load_rules_text(
        HEAD + routes.replace("/tenant, mode: filter", "/tenant, mode: block") + INVOICE_READ,
        source="r.yaml",
        env={},
    )
    guarded = dataclasses.replace(
        valid.routes[0], guard=GuardSpec("/rows/0/tenant", GuardMode.FILTER)
    )
    ruleset = dataclasses.replace(valid, routes=(guarded, *valid.routes[1:]))
    found = lint(ruleset)
    assert (FILTER_WITHOUT_WILDCARD, "list") in [(item.code, item.route) for item in found]
    assert "can filter nothing" in found[0].message


def test_ignore_lints_naming_no_lint_is_itself_a_lint() -> None:
    routes = INVOICE_READ.replace(
        "    resource:", "    ignore_lints: [writes-uncheked]\n    resource:"
    )
    found = lints_of(routes)
    assert codes(found) == [(11, UNKNOWN_CODE)]
    assert "use one of" in found[0].message


def test_a_catch_all_shadowing_an_id_inside_a_segment_is_reported() -> None:
    """``/items/{id:int}.json`` checks its id; a catch-all that wins DELETE there does not."""
    found = lints_of(
        """
  - name: item-json
    match: {path: "/items/{item_id:int}.json", methods: [GET]}
    upstream: app
    resource: {type: invoice, id: path.item_id}
  - name: anything
    match: {path: "/items/{rest:path}"}
    upstream: app
"""
    )
    assert any(lint.code == "route-shadowed" and "anything" in lint.message for lint in found), (
        found
    )


def test_a_guarded_route_without_a_query_allow_list_is_reported() -> None:
    guarded = """
  - name: rows
    match: {path: "/rows", methods: [GET]}
    upstream: app
    guard: {tenant_field: "/rows/*/tenant", mode: block}
"""
    found = [(item.code, item.route) for item in lints_of(guarded)]
    assert ("guard-without-query-allow", "rows") in found
    allowed = guarded + "    query: {allow: [page]}\n"
    assert "guard-without-query-allow" not in [item.code for item in lints_of(allowed)]


DOWNLOAD = """\
  - name: invoice-pdf
    match: {path: "/api/invoices/{id:int}/pdf", methods: [GET]}
    upstream: app
    action: download
    resource: {type: invoice, id: path.id}
"""


def test_a_download_route_without_a_file_block_is_reported() -> None:
    found = lints_of(DOWNLOAD + INVOICE_READ)
    assert codes(found) == [(11, DOWNLOAD_WITHOUT_FILE)]
    assert "file: {disposition: attachment}" in found[0].message
    assert found[0].route == "invoice-pdf"


@pytest.mark.parametrize(
    "extra",
    [
        "    file: {disposition: attachment}\n",
        "    file: {disposition: inline}\n",
        "    ignore_lints: [download-without-file]\n",
    ],
)
def test_a_download_route_with_a_file_block_or_accepted_is_not_reported(extra: str) -> None:
    assert lints_of(DOWNLOAD + extra + INVOICE_READ) == []


def test_only_the_download_action_needs_a_file_block() -> None:
    export = DOWNLOAD.replace("action: download", "action: export")
    assert lints_of(export + INVOICE_READ) == []
