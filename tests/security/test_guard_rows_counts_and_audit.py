"""The response guard against the leaks of a real data-browsing app, through a gateway.

The attacks: rows answered as arrays (``[[id, tenant, ...], ...]``) could not be
guarded, since a pointer could not index an array, so a globex row went out; an answer
whose ``rows`` were empty still gave away the other tenant through ``total``,
``next_page`` and ``facets`` (one request at a time, or all at once); a 500 carrying
globex rows; an answer too large to check. Now ``/rows/*/1`` reaches the tenant cell,
``guard.fields`` keeps only the allowed members (every spelling of the others goes),
what cannot be checked is refused, and the outcome row of the audit says what the
guard found and did.

The upstream is a real scripted aiohttp app (``scripted_upstream``) behind a real
gateway (``running_stack``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
SECRET = "globex-secret-row"
ALICE = "alice@acme.test"

RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
routes:
  - name: grid-block
    match: {{path: "/api/grid/block/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "/rows/*/1", mode: block, fields: {{allow: [columns, rows]}}}}
  - name: grid-filter
    match: {{path: "/api/grid/filter/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "/rows/*/1", mode: filter, fields: {{allow: [columns, rows]}}}}
  - name: list-fields
    match: {{path: "/api/list/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{fields: {{allow: [rows, error]}}}}
  - name: paged
    match: {{path: "/api/paged/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard:
      tenant_field: "/data/*/tenant"
      mode: filter
      fields: {{allow: [size], at: /page}}
"""

COLUMNS = ["id", "tenant", "name"]
OWN_ROWS = [[1, "acme", "Anvil"], [2, "acme", "Rocket"]]
GLOBEX_ROW = [3, "globex", SECRET]


@asynccontextmanager
async def guarded_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app") as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


async def outcome_of(stack: Stack, response: ClientResponse) -> dict[str, Any]:
    """The request's audit rows: the decision first, then the outcome (decoded)."""
    rows = await stack.audit_rows(response.headers["X-Request-Id"])
    assert rows[0]["decision"] == "allow"
    assert rows[-1]["kind"] == "outcome"
    data: dict[str, Any] = json.loads(rows[-1]["data"])
    data["reason"] = rows[-1]["reason"]
    return data


async def get(stack: Stack, path: str) -> ClientResponse:
    return await stack.client.get(path, headers=stack.cookie(ALICE) | API)


async def assert_blocked(stack: Stack, app: Scripted, response: ClientResponse) -> dict[str, Any]:
    text = await response.text()
    assert response.status == 502, text
    assert json.loads(text)["type"].endswith("/guard-blocked")
    assert SECRET not in text and "globex" not in text
    assert app.hit_count(response.headers["X-Request-Id"]) == 1, "forwarded once, then refused"
    outcome = await outcome_of(stack, response)
    assert outcome["status"] == 502 and outcome["reason"] == "guard-blocked"
    return outcome


ARRAY_LEAKS = {
    "a globex row among the caller's": {"columns": COLUMNS, "rows": [*OWN_ROWS, GLOBEX_ROW]},
    "only a globex row": {"columns": COLUMNS, "rows": [GLOBEX_ROW]},
    "a row too short to have a tenant": {"columns": COLUMNS, "rows": [*OWN_ROWS, [4]]},
    "a row that is an object, not an array": {
        "columns": COLUMNS,
        "rows": [*OWN_ROWS, {"tenant": "globex", "name": SECRET}],
    },
}


@pytest.mark.parametrize("document", ARRAY_LEAKS.values(), ids=ARRAY_LEAKS.keys())
async def test_block_refuses_rows_answered_as_arrays_with_a_foreign_cell(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/grid/block/x"] = Answer.json(document)
        outcome = await assert_blocked(stack, app, await get(stack, "/api/grid/block/x"))
        assert outcome["guard"]["pointer"] == "/rows/*/1"
        assert outcome["guard"]["foreign"] >= 1
        assert outcome["guard"]["refused"] == "the answer held another tenant's data"


async def test_filter_drops_foreign_array_rows_and_the_audit_counts_them(tmp_path: Path) -> None:
    document = {"columns": COLUMNS, "rows": [GLOBEX_ROW, *OWN_ROWS, [4, "initech", "x"]]}
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/grid/filter/x"] = Answer.json(document)
        response = await get(stack, "/api/grid/filter/x")
        body = await response.read()
        assert response.status == 200, body
        assert json.loads(body) == {"columns": COLUMNS, "rows": OWN_ROWS}
        assert response.content_length == len(body), "the length of the bytes actually sent"
        outcome = await outcome_of(stack, response)
        assert outcome["status"] == 200 and outcome["reason"] == ""
        assert outcome["bytes"] == len(body)
        assert outcome["guard"] == {
            "pointer": "/rows/*/1",
            "foreign": 2,
            "removed": 2,
            "fields_at": "",
            "stripped": [],
        }


# Every other member goes, whatever its spelling: the allow-list names what stays.
CHATTY = (
    b'{"rows": [], "total": 3, "Total": 3, "\\u0074otal_count": 3, "rows ": [1],'
    b' "next_page": "eyJ0ZW5hbnQiOiAiZ2xvYmV4In0", "cursor": {"after": "globex:17"},'
    b' "facets": {"tenant": {"globex": 3}, "name": {"globex-secret-row": 1}},'
    b' "meta": {"count": 3}}'
)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_counts_tokens_and_facets_are_stripped_from_an_empty_page(
    tmp_path: Path, chunked: bool
) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/list/empty"] = Answer(
            chunks=(CHATTY[:40], CHATTY[40:]),
            chunked=chunked,
            headers={"ETag": '"abc"', "Content-Digest": "sha-256=:AAAA:"},
        )
        response = await get(stack, "/api/list/empty")
        body = await response.read()
        assert response.status == 200, body
        assert json.loads(body) == {"rows": []}
        assert b"globex" not in body and b"3" not in body
        assert response.content_length == len(body)
        assert "ETag" not in response.headers and "Content-Digest" not in response.headers
        outcome = await outcome_of(stack, response)
        assert outcome["guard"] == {
            "fields_at": "",
            "stripped": [
                "Total",
                "cursor",
                "facets",
                "meta",
                "next_page",
                "rows ",
                "total",
                "total_count",
            ],
        }


async def test_a_nested_page_block_keeps_only_its_allowed_member(tmp_path: Path) -> None:
    document = {
        "data": [{"id": 1, "tenant": "acme"}, {"id": 2, "tenant": "globex", "s": SECRET}],
        "page": {"size": 2, "total": 40, "next": "Z2xvYmV4OjI="},
    }
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/paged/x"] = Answer.json(document)
        response = await get(stack, "/api/paged/x")
        assert response.status == 200
        assert await response.json() == {"data": [{"id": 1, "tenant": "acme"}], "page": {"size": 2}}
        outcome = await outcome_of(stack, response)
        assert outcome["guard"] == {
            "pointer": "/data/*/tenant",
            "foreign": 1,
            "removed": 1,
            "fields_at": "/page",
            "stripped": ["next", "total"],
        }


async def test_a_success_without_the_shape_the_fields_describe_is_refused(tmp_path: Path) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/paged/no-page"] = Answer.json(
            {"data": [], "paging": {"total": 3, "next": SECRET}}
        )
        outcome = await assert_blocked(stack, app, await get(stack, "/api/paged/no-page"))
        assert (
            outcome["guard"]["refused"] == "the answer has no object at '/page' to keep fields of"
        )


ERROR_LEAKS = {
    "a 500 carrying globex array rows": (
        "/api/grid/block/e500",
        Answer.json({"error": "boom", "rows": [GLOBEX_ROW]}, status=500),
    ),
    "a 500 of a filter route carrying globex array rows": (
        "/api/grid/filter/e500",
        Answer.json({"error": "boom", "rows": [OWN_ROWS[0], GLOBEX_ROW]}, status=500),
    ),
    "a 500 traceback as plain text": (
        "/api/list/e500",
        Answer(
            status=500, chunks=(f"Traceback: row {SECRET}".encode(),), content_type="text/plain"
        ),
    ),
    "a 400 as an HTML page": (
        "/api/list/e400",
        Answer(status=400, chunks=(f"<pre>{SECRET}</pre>".encode(),), content_type="text/html"),
    ),
}


@pytest.mark.parametrize(("path", "answer"), ERROR_LEAKS.values(), ids=ERROR_LEAKS.keys())
async def test_an_error_answer_carrying_globex_data_is_blocked(
    tmp_path: Path, path: str, answer: Answer
) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers[path] = answer
        outcome = await assert_blocked(stack, app, await get(stack, path))
        assert outcome["guard"]["refused"]


async def test_an_error_keeps_its_message_and_loses_the_rest(tmp_path: Path) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/list/e409"] = Answer.json(
            {"error": "conflict", "existing": {"tenant": "globex", "s": SECRET}}, status=409
        )
        response = await get(stack, "/api/list/e409")
        assert response.status == 409
        assert await response.json() == {"error": "conflict"}
        outcome = await outcome_of(stack, response)
        assert outcome["guard"] == {"fields_at": "", "stripped": ["existing"]}


async def test_an_answer_over_the_limit_is_refused_and_audited(tmp_path: Path) -> None:
    rows = [[n, "acme", "x" * 400] for n in range(21_000)]  # about 9 MB, over 8 MiB
    data = json.dumps({"columns": COLUMNS, "rows": rows}).encode()
    size = len(data) // 100 + 1
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/grid/filter/huge"] = Answer(
            chunks=tuple(data[i : i + size] for i in range(0, len(data), size))
        )
        response = await get(stack, "/api/grid/filter/huge")
        assert response.status == 502
        assert (await response.json())["type"].endswith("/guard-blocked")
        outcome = await outcome_of(stack, response)
        assert outcome["reason"] == "guard-blocked"
        assert outcome["guard"]["refused"] == (
            f"the answer is larger than {8 * 1024 * 1024} bytes, too large to check"
        )
