"""Object ids inside a segment (``/items/{id:int}.json``) are checked like any path id.

Apps address objects as ``/items/7.json``, ``/items/7.csv`` or ``/export-r-1.pdf``. Such
addresses could not be written as a route, so they were left to broad routes that check
no object: anyone could fetch another tenant's ``/items/8.json``. Now the id between the
literal prefix and suffix is an object id with its owner looked up, and only the exact
spelling of the literal text matches (case-sensitive, on the canonical path): any other
spelling finds no route and is refused before any lookup. An escaped dot (``%2E``) is
the dot itself in the canonical path, which is also what the app receives, so it is
checked as ``.json``; a doubly escaped one is ambiguous and refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support.rawhttp import raw_request
from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}

RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
  readonly: {{can: [read]}}
  admin:    {{can: [read, write]}}
  operator: {{can: [read], scope: global}}
resources:
  item:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
  report:
    id_type: slug
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
routes:
  - name: item-json
    match: {{path: "/items/{{id:int}}.json", methods: [GET]}}
    upstream: app
    resource: {{type: item, id: path.id}}
  - name: item-csv
    match: {{path: "/items/{{id:int}}.csv", methods: [GET]}}
    upstream: app
    resource: {{type: item, id: path.id}}
  - name: report-pdf
    match: {{path: "/export-{{id:slug}}.pdf", methods: [GET]}}
    upstream: app
    resource: {{type: report, id: path.id}}
  - name: org-summary
    match: {{path: "/org-{{org:slug}}/summary", methods: [GET]}}
    upstream: app
    tenant: path.org
"""

OWNERS = {"7": "acme", "8": "globex", "r-1": "acme", "g-1": "globex"}


@asynccontextmanager
async def suffixed_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app", owners=dict(OWNERS)) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


async def _get(stack: Stack, target: str) -> tuple[int, str, str]:
    """Status, problem type (or body) and request id of ``target`` sent byte for byte."""
    server = stack.client.server
    headers = stack.cookie("alice@acme.test") | API
    response = await raw_request(server.host, server.port, "GET", target, headers)
    kind = response.json().get("type", "") if response.status >= 400 else response.body.decode()
    return response.status, kind, response.headers["x-request-id"]


OWN = {
    "an item as JSON": ("/items/7.json", "/items/7.json"),
    "the same item as CSV": ("/items/7.csv", "/items/7.csv"),
    "an escaped dot, forwarded as the dot": ("/items/7%2Ejson", "/items/7.json"),
    "a lower-case escaped dot": ("/items/7%2ejson", "/items/7.json"),
    "a slug between a prefix and a suffix": ("/export-r-1.pdf", "/export-r-1.pdf"),
    "the caller's tenant after a prefix": ("/org-acme/summary", "/org-acme/summary"),
}


@pytest.mark.parametrize(("target", "forwarded"), OWN.values(), ids=OWN.keys())
async def test_the_callers_own_objects_are_reached_at_the_canonical_address(
    tmp_path: Path, target: str, forwarded: str
) -> None:
    async with suffixed_stack(tmp_path) as (stack, app):
        status, body, request_id = await _get(stack, target)
        assert status == 200, body
        assert f'"path": "{forwarded}"' in body
        assert app.hit_count(request_id) == 1


FOREIGN = {
    "another tenant's item as JSON": ("/items/8.json", "8"),
    "as CSV": ("/items/8.csv", "8"),
    "with an escaped dot": ("/items/8%2Ejson", "8"),
    "with a lower-case escaped dot": ("/items/8%2ecsv", "8"),
    "another tenant's report": ("/export-g-1.pdf", "g-1"),
    "an item that does not exist": ("/items/99.json", "99"),
}


@pytest.mark.parametrize(("target", "looked_up"), FOREIGN.values(), ids=FOREIGN.keys())
async def test_another_tenants_object_inside_a_segment_is_refused_like_a_missing_one(
    tmp_path: Path, target: str, looked_up: str
) -> None:
    async with suffixed_stack(tmp_path) as (stack, app):
        status, kind, request_id = await _get(stack, target)
        assert status == 404
        assert app.hit_count(request_id) == 0, "nothing reached the app"
        assert app.lookups == [looked_up], "the id between prefix and suffix was looked up"
        row, *_ = await stack.audit_rows(request_id)
        assert row["decision"] == "deny"
        assert row["reason"] in ("tenant-foreign", "object-not-found")
        assert kind.endswith(("/tenant-foreign", "/object-not-found"))


async def test_another_tenant_named_after_a_prefix_is_refused(tmp_path: Path) -> None:
    async with suffixed_stack(tmp_path) as (stack, app):
        status, _, request_id = await _get(stack, "/org-globex/summary")
        assert status in (403, 404)
        assert app.hit_count(request_id) == 0
        row, *_ = await stack.audit_rows(request_id)
        assert row["decision"] == "deny" and row["reason"] == "tenant-foreign"


OTHER_SPELLINGS = [
    "/items/8.JSON",
    "/items/8.Json",
    "/items/8%2EJSON",
    "/items/8json",
    "/items/8%2E%2Ejson",
    "/items/8.json.",
    "/items/8.jsonx",
    "/items/8.json.bak",
    "/items/8.json/",
    "/items/8.json/x",
    "/items/8.5.json",
    "/items/+8.json",
    "/items/.json",
    "/items/8",
    "/export-g.1.pdf",
    "/export-g-1.PDF",
    "/Export-g-1.pdf",
    "/export-g-1pdf",
    "/export-.pdf",
    "/ORG-globex/summary",
    "/org-/summary",
]


@pytest.mark.parametrize("target", OTHER_SPELLINGS)
async def test_any_other_spelling_of_the_literal_text_finds_no_route(
    tmp_path: Path, target: str
) -> None:
    async with suffixed_stack(tmp_path) as (stack, app):
        status, kind, request_id = await _get(stack, target)
        assert status == 404 and kind.endswith("/route-not-found"), kind
        assert app.hit_count(request_id) == 0 and app.lookups == []
        row, *_ = await stack.audit_rows(request_id)
        assert row["decision"] == "deny" and row["reason"] == "route-not-found"


@pytest.mark.parametrize(
    "target", ["/items/8%252Ejson", "/items/8%252ejson", "/items/8.json%00", "/items/8%2Fjson"]
)
async def test_an_ambiguous_spelling_is_refused_before_routing(tmp_path: Path, target: str) -> None:
    async with suffixed_stack(tmp_path) as (stack, app):
        status, kind, request_id = await _get(stack, target)
        assert status == 400 and kind.endswith("/target-ambiguous"), kind
        assert app.total_hits == 0 and app.lookups == []
        row, *_ = await stack.audit_rows(request_id)
        assert row["reason"] == "target-ambiguous" and not row["route"]
