"""The reference model says what the documents say, on their own examples.

The model is only worth comparing with if it is right where the specification is
explicit: these are the examples of SPEC I2/I3 and ``docs/rules.md``, checked on the
model alone (no gateway).
"""

from __future__ import annotations

import pytest

from tests.fuzz.reference_model import (
    Person,
    Role,
    Route,
    Rules,
    canonical_target,
    judge,
    match,
    reads_as,
)

HOST = "gatehold.test"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/items/4%2Ejson", ("/items/4.json", "")),  # %2E is the unreserved '.' itself
        ("/items/4.json", ("/items/4.json", "")),
        ("/caf%c3%a9", ("/caf%C3%A9", "")),  # upper-case hex
        ("/a/b/", ("/a/b/", "")),  # one trailing slash is kept
        ("/a%2Bb", ("/a+b", "")),
        (f"http://{HOST}/a?x=1", ("/a", "x=1")),
        ("/items/%252E", None),  # double encoding
        ("/api/../admin", None),
        ("/a/%2e%2E/b", None),
        ("/a%2Fb", None),
        ("/a%5cb", None),
        ("/a//b", None),
        ("/a;b", None),
        ("/a%00", None),
        ("/a%C0%AF", None),  # overlong '/', not UTF-8
        ("/a%EF%BC%8F", None),  # fullwidth solidus
        ("/a%", None),
        ("/é", None),  # raw non-ASCII
        ("http://elsewhere.test/a", None),
        ("/a?_method=DELETE", None),
        ("/a?%5Fmethod=DELETE", None),
    ],
    ids=lambda value: str(value),
)
def test_canonical_targets_follow_i2(raw: str, canonical: tuple[str, str] | None) -> None:
    assert canonical_target(raw, HOST) == canonical


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/items/{id:int}.json", "/items/4.json", {"id": "4"}),
        ("/items/{id:int}.json", "/items/4.JSON", None),
        ("/items/{id:int}.json", "/items/4json", None),
        ("/items/{id:int}.json", "/items/4.json/", None),
        ("/export-{id:slug}.pdf", "/export-a.b.pdf", None),  # a slug has no '.'
        ("/export-{name}.pdf", "/export-a.b.pdf", {"name": "a.b"}),
        ("/static/{rest:path}", "/static/a/b", {"rest": "a/b"}),
        ("/static/{rest:path}", "/static/", None),
        ("/api/invoices/{id:int}", "/API/invoices/7", None),  # literals keep their case
    ],
)
def test_templates_match_as_documented(
    template: str, path: str, params: dict[str, str] | None
) -> None:
    assert match(template, path) == params


@pytest.mark.parametrize(
    "key", ["Invoice_Id", "invoice_id[]", "invoice_id%5B0%5D", "invoice.id", "%20invoice_id"]
)
def test_other_spellings_read_as_the_checked_name(key: str) -> None:
    assert reads_as(key, "invoice_id")


RULES = Rules(
    roles={"reader": Role(frozenset({"read"})), "staff": Role(frozenset({"read"}), True)},
    id_types={"invoice": "int"},
    routes=(
        Route("invoice", "/api/invoices/{id:int}", frozenset({"GET"}), resource=("invoice", "id")),
        Route("any", "/api/{kind}/{id:int}", frozenset({"GET", "DELETE"})),
        Route("area", "/t/{org}/{rest:path}", tenant_param="org"),
        Route("export", "/api/export", frozenset({"POST"}), action="read", step_up=600.0),
    ),
)
OWNERS = {("invoice", "7"): "acme", ("invoice", "8"): "globex"}
ALICE = Person((("acme", "reader"),))


@pytest.mark.parametrize(
    ("person", "method", "target", "allowed", "statuses"),
    [
        (ALICE, "GET", "/api/invoices/7", True, set()),
        (ALICE, "GET", "/api/invoices/007", True, set()),  # object 7, as the app reads it
        (ALICE, "HEAD", "/api/invoices/7", True, set()),  # GET includes HEAD
        (ALICE, "GET", "/api/invoices/8", False, {404}),  # foreign
        (ALICE, "GET", "/api/invoices/9", False, {404}),  # missing: the same answer
        (None, "GET", "/api/invoices/7", False, {401}),
        (ALICE, "DELETE", "/api/invoices/7", False, {403}),  # the other route: no role deletes
        (ALICE, "PUT", "/api/invoices/7", False, {405}),
        (ALICE, "GET", "/nowhere", False, {404}),
        (ALICE, "GET", "/t/acme/x", True, set()),
        (ALICE, "GET", "/t/globex/x", False, {403, 404}),
        (ALICE, "GET", "/t/ACME/x", False, {404}),  # not a tenant id
        (Person((("*", "staff"),)), "GET", "/t/globex/x", True, set()),
        (Person((("*", "staff"),)), "GET", "/t/acme%20/x", False, {404}),
        (ALICE, "POST", "/api/export", True, set()),
        (Person((("acme", "reader"),), auth_age=1200), "POST", "/api/export", False, {401}),
    ],
)
def test_decisions_follow_the_rules_format(
    person: Person | None, method: str, target: str, allowed: bool, statuses: set[int]
) -> None:
    verdict = judge(RULES, person, OWNERS, method, target, public_host=HOST)
    assert (verdict.allowed, set(verdict.statuses)) == (allowed, statuses), verdict.why
