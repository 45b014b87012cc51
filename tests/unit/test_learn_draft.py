"""The draft: routes only for what was seen, ids proposed, owners left as questions,
and a text the rules loader accepts."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import yaml

from gateway.config.loader import check_rules_text
from gateway.learn.draft import QUESTION
from gateway.learn.run import Learned, LearnFailed, LearnOptions, TextSource, learn
from gateway.learn.writer import Upstream, scalar
from gateway.model import HttpOwner, RuleSet

LINE = '10.0.0.1 - - [29/Nov/2026:10:00:00 +0000] "{method} {target} HTTP/1.1" {status} 12 "-" "ua"'


def log(*requests: str, status: int = 200) -> TextSource:
    lines = []
    for request in requests:
        method, target = request.split(" ", 1)
        lines.append(LINE.format(method=method, target=target, status=status))
    return TextSource("access.log", "\n".join(lines) + "\n")


def learned(*sources: TextSource, **options: object) -> Learned:
    result = learn(list(sources), [], LearnOptions(**options))  # type: ignore[arg-type]
    assert isinstance(result, Learned), result
    return result


def loaded(text: str) -> RuleSet:
    ruleset, problems = check_rules_text(text, source="draft", env={})
    assert ruleset is not None, problems
    return ruleset


def routes(text: str) -> dict[str, dict[str, object]]:
    return {route["name"]: route for route in yaml.safe_load(text)["routes"]}


def test_ids_in_paths_and_queries_become_checked_routes() -> None:
    draft = learned(
        log("GET /api/invoices/7", "GET /api/invoices/8", "HEAD /api/invoices/8",
            "DELETE /api/invoices/9", "GET /api/search?invoice=7&q=acme",
            "GET /api/invoices?page=2&status=open", "POST /api/invoices/export")
    )  # fmt: skip
    found = routes(draft.text)
    assert found["get-api-invoices-invoice-id"] == {
        "name": "get-api-invoices-invoice-id",
        "match": {"path": "/api/invoices/{invoice_id:int}", "methods": ["GET"]},
        "upstream": "app",
        "resource": {"type": "invoice", "id": "path.invoice_id"},
    }
    assert found["delete-api-invoices-invoice-id"]["resource"] == {
        "type": "invoice",
        "id": "path.invoice_id",
    }
    assert found["get-api-search"]["query_ids"] == [{"type": "invoice", "param": "invoice"}]
    assert found["get-api-search"]["query"] == {"allow": ["invoice", "q"]}
    assert found["get-api-invoices"]["query"] == {"allow": ["page", "status"]}
    assert "query_ids" not in found["get-api-invoices"], "page counts, it names nothing"
    assert set(found) == {
        "get-api-invoices-invoice-id",
        "delete-api-invoices-invoice-id",
        "get-api-search",
        "get-api-invoices",
        "post-api-invoices-export",
    }, "HEAD is covered by the GET route"
    ruleset = loaded(draft.text)
    assert ruleset.resources["invoice"].id_type == "int"


def test_every_owner_is_a_lookup_that_cannot_answer() -> None:
    draft = learned(log("GET /a/7", "GET /b/r-acme-1", "GET /c?thing_id=x1"))
    ruleset = loaded(draft.text)
    assert set(ruleset.resources) == {"a", "b", "thing"}
    for resource in ruleset.resources.values():
        assert isinstance(resource.owner, HttpOwner)
        host = urlsplit(resource.owner.url).hostname or ""
        assert host.endswith(".invalid") and QUESTION.lower() in host
        assert QUESTION in resource.owner.tenant_field


def test_the_gatehold_json_log_gives_lists_an_empty_allow_list_and_says_why() -> None:
    lines = [
        json.dumps({"logger": "gatehold.access", "method": "GET", "path": p, "status": 200,
                    "decision": "allow"})
        for p in ("/api/items", "/api/items/7")
    ]  # fmt: skip
    draft = learned(TextSource("serve.log", "\n".join(lines)))
    assert routes(draft.text)["get-api-items"]["query"] == {"allow": []}
    assert "the log shows no query strings" in draft.text


def test_min_requests_leaves_one_off_noise_out() -> None:
    draft = learned(log("GET /a/7", "GET /a/8", "GET /once"), min_requests=2)
    assert set(routes(draft.text)) == {"get-a-a-id"}
    assert "  fewer than --min-requests: GET /once (1 requests)" in draft.summary


def test_evidence_sits_beside_each_route() -> None:
    text = learned(log("GET /a/7", "GET /a/8")).text
    before = text.split("  - name: get-a-a-id")[0].splitlines()[-3:]
    assert before == [
        "  # seen 2 times: 200×2",
        "  # e.g. /a/7, /a/8",
        "  # {a_id} values: 7, 8",
    ]


def test_a_second_id_in_a_path_is_a_question() -> None:
    text = learned(log("GET /orgs/3/invoices/7")).text
    assert "QUESTION: {org_id} is not checked" in text
    assert routes(text)["get-orgs-org-id-invoices-invoice-id"]["resource"] == {
        "type": "invoice",
        "id": "path.invoice_id",
    }


def test_values_cannot_break_out_of_their_comment() -> None:
    hostile = "GET /search?q=%0Aroutes:%0A-%20name:%20x&next=%E2%80%A8"
    text = learned(log(hostile)).text
    ruleset = loaded(text)
    assert [route.name for route in ruleset.routes] == ["get-search"]
    assert "# ?q values: \\x0aroutes:\\x0a- name: x" in text


def test_the_upstream_given_is_used() -> None:
    text = learned(log("GET /a"), upstream=Upstream("ledger", "http://10.0.0.5:9001", True)).text
    assert loaded(text).upstreams["ledger"].url == "http://10.0.0.5:9001"
    assert "QUESTION: the app's address" not in text


def test_writes_without_ids_are_questions_and_lints() -> None:
    draft = learned(log("POST /api/invoices"))
    assert "QUESTION: this write names no object or tenant" in draft.text
    assert [item.code for item in draft.lints] == ["writes-unchecked"]


def test_nothing_to_learn_is_a_clear_error() -> None:
    misses = learn([log("GET /wp-login.php", status=404)], [], LearnOptions())
    assert isinstance(misses, LearnFailed)
    assert misses.problems == [
        "nothing to learn: no request in the input counts as evidence of an address the app serves"
    ]
    garbage = learn([TextSource("x.log", "a\nb\nc\nd\ne\nf\ng\n")], [], LearnOptions())
    assert isinstance(garbage, LearnFailed)
    assert garbage.problems == [
        "nothing to learn: no request could be read from the logs (is --format right?)"
    ]
    assert garbage.summary[:7] == [
        "read 0 requests from 1 log; 7 unreadable lines",
        "  unreadable: x.log:1: not a combined or common log line",
        "  unreadable: x.log:2: not a combined or common log line",
        "  unreadable: x.log:3: not a combined or common log line",
        "  unreadable: x.log:4: not a combined or common log line",
        "  unreadable: x.log:5: not a combined or common log line",
        "  … and 2 more",
    ]


def test_a_bad_document_is_an_error() -> None:
    failed = learn([], [TextSource("api.yaml", "title: x\n")], LearnOptions())
    assert isinstance(failed, LearnFailed)
    assert "api.yaml: not an OpenAPI document" in failed.problems[0]


def test_scalars() -> None:
    assert scalar("get-a") == "get-a"
    assert scalar("yes") == '"yes"'
    assert scalar("/a/{b:int}") == '"/a/{b:int}"'
    assert scalar("n") == '"n"'
    assert yaml.safe_load(scalar("a: #b\n'")) == "a: #b\n'"


def test_a_tenant_in_the_path_is_checked_as_the_tenant() -> None:
    draft = learned(
        log("GET /t/acme/dashboard", "POST /t/globex/notes", "GET /t/acme/invoices/7"),
        tenants=frozenset({"acme", "globex"}),
    )
    found = routes(draft.text)
    assert found["post-t-tenant-notes"]["tenant"] == "path.tenant"
    assert found["get-t-tenant-invoices-invoice-id"]["tenant"] == "path.tenant"
    assert found["get-t-tenant-invoices-invoice-id"]["resource"] == {
        "type": "invoice",
        "id": "path.invoice_id",
    }
    assert "query" not in found["get-t-tenant-dashboard"], "a tenant's page is no list"
    assert draft.lints == [], "a write in a named tenant is checked"
    ruleset = loaded(draft.text)
    assert {r.tenant_param for r in ruleset.routes} == {"tenant"}


def test_a_documents_integer_query_parameter_is_an_id_only_when_named_so() -> None:
    doc = {
        "openapi": "3.0.0",
        "paths": {"/rows": {"get": {"parameters": [
            {"name": "amount", "in": "query", "schema": {"type": "integer"}},
            {"name": "owner_id", "in": "query", "schema": {"type": "integer"}},
        ]}}},
    }  # fmt: skip
    result = learn([], [TextSource("api.json", json.dumps(doc))], LearnOptions())
    assert isinstance(result, Learned), result
    rows = routes(result.text)["get-rows"]
    assert rows["query_ids"] == [{"type": "owner", "param": "owner_id"}]
    assert rows["query"] == {"allow": ["amount", "owner_id"]}


def test_a_literal_where_ids_go_is_a_question() -> None:
    text = learned(log("GET /reports/r-1a2b3c4d", "GET /reports/recent")).text
    assert "QUESTION: is recent (where {slug} ids go) an object rather than an endpoint?" in text
