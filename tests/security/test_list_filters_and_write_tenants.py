"""A multi-tenant data-browsing app behind the gateway: filters, facets and writes.

The app ("Browse") trusts its parameters, as the real one did: ``?tenant=`` picks the
tenant whose rows are listed (none: every tenant's), ``?where=`` is a raw filter,
``?_facet_tenant`` counts rows per tenant over the whole table, ``X-Tenant`` picks the
tenant of a second list, and writes store the ``tenant`` the body names. The attacks:
an acme user lists globex's rows with every spelling of ``tenant=``, a raw ``where``,
a facet; creates a row "tenant": "globex"; moves their own row to globex. Each is
refused before reaching the app, or reaches it bound to acme only; each is audited.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from gateway.admin.explain import explain, principal_for
from gateway.context import GATEWAY
from tests.support.rawhttp import RawResponse, raw_request
from tests.support.stack import Stack, running_stack

RULES = """
version: 1
upstreams:
  browse: {url: "${APP_URL}", timeout: 10s}
roles:
  standard: {can: [read, write]}
resources:
  row:
    id_type: int
    owner: {http: "GET {upstream}/internal/rows/{id}", tenant_field: /tenant}
routes:
  - name: rows-list
    match: {path: /rows, methods: [GET]}
    upstream: browse
    query: {allow: [page, sort, q], deny: [where, "_facet*"]}
    bind: {query: {tenant: caller.tenant}}
  - name: rows-by-header
    match: {path: /by-header/rows, methods: [GET]}
    upstream: browse
    bind: {headers: {X-Tenant: caller.tenant}}
  - name: rows-search
    match: {path: /search, methods: [GET]}
    upstream: browse
    query: {deny: [tenant, where, "_facet*"], require: [q]}
  - name: rows-create
    match: {path: /rows, methods: [POST]}
    upstream: browse
    body_tenant: {pointer: /tenant, field: tenant}
  - name: rows-import
    match: {path: /rows/import, methods: [POST]}
    upstream: browse
    body_tenant: {pointer: /rows/*/tenant, on_missing: refuse}
  - name: row-update
    match: {path: "/rows/{id:int}", methods: [PUT, PATCH]}
    upstream: browse
    resource: {type: row, id: path.id}
    body_tenant: {pointer: /tenant}
  - name: row-lines
    match: {path: /lines, methods: [GET]}
    upstream: browse
    query_ids: [{type: row, param: row, required: true}]
"""
ALICE = "alice@acme.test"
API = {"Accept": "application/json"}


@dataclass
class Browse:
    """What the app holds and what reached it, per X-Request-Id."""

    rows: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {
            i: {"id": i, "tenant": "acme" if i % 2 else "globex", "name": f"row {i}"}
            for i in range(1, 7)
        }
    )
    targets: dict[str, str] = field(default_factory=dict)
    headers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def reached(self, request_id: str) -> bool:
        return request_id in self.targets


def _listing(rows: list[dict[str, Any]], everyone: list[dict[str, Any]], facets: bool) -> Any:
    answer: dict[str, Any] = {"rows": rows, "count": len(rows)}
    if facets:
        counts: dict[str, int] = {}
        for row in everyone:
            counts[row["tenant"]] = counts.get(row["tenant"], 0) + 1
        answer["facets"] = {"tenant": counts}
    return answer


@asynccontextmanager
async def browse_app() -> AsyncIterator[tuple[str, Browse]]:
    """The naive app on a loopback port."""
    state = Browse()

    async def record(request: web.Request) -> bytes:
        request_id = request.headers.get("X-Request-Id", "-")
        body = await request.read()
        state.targets[request_id] = request.raw_path
        state.headers[request_id] = list(request.headers.items())
        state.bodies[request_id] = body
        return body

    def pick(tenant: str | None, where: str | None) -> list[dict[str, Any]]:
        if where and "=" in where:
            tenant = where.split("=", 1)[1].strip(" '\"")
        return [r for r in state.rows.values() if tenant is None or r["tenant"] == tenant]

    async def rows(request: web.Request) -> web.Response:
        await record(request)
        query = request.query
        facets = any(key.lower().startswith("_facet") for key in query)
        everyone = list(state.rows.values())
        # Like many apps: the last value of the name wins, whatever else was sent.
        tenant = query.getall("tenant")[-1] if "tenant" in query else None
        return web.json_response(_listing(pick(tenant, query.get("where")), everyone, facets))

    async def by_header(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response(_listing(pick(request.headers.get("X-Tenant"), None), [], False))

    async def create(request: web.Request) -> web.Response:
        body = await record(request)
        if request.content_type == "application/json":
            data = json.loads(body)
        else:
            data = dict(parse_qsl(body.decode()))
        new_id = max(state.rows) + 1
        state.rows[new_id] = {"id": new_id, "tenant": data.get("tenant"), "name": data.get("name")}
        return web.json_response(state.rows[new_id], status=201)

    async def update(request: web.Request) -> web.Response:
        data = json.loads(await record(request) or b"{}")
        row = state.rows[int(request.match_info["id"])]
        row.update({k: v for k, v in data.items() if k in ("tenant", "name")})
        return web.json_response(row)

    async def owner(request: web.Request) -> web.Response:
        row = state.rows.get(int(request.match_info["id"]))
        return web.json_response(row) if row else web.json_response({}, status=404)

    async def lines(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"lines": [], "row": request.query.get("row")})

    app = web.Application()
    app.router.add_get("/rows", rows)
    app.router.add_get("/search", rows)
    app.router.add_get("/by-header/rows", by_header)
    app.router.add_post("/rows", create)
    app.router.add_post("/rows/import", create)
    app.router.add_route("*", "/rows/{id:[0-9]+}", update)
    app.router.add_get("/internal/rows/{id:[0-9]+}", owner)
    app.router.add_get("/lines", lines)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", state
    finally:
        await runner.cleanup()


@asynccontextmanager
async def browse_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Browse]]:
    async with browse_app() as (url, state):
        async with running_stack(tmp_path, rules_text=RULES, rules_env={"APP_URL": url}) as stack:
            yield stack, state


async def get(stack: Stack, target: str, headers: dict[str, str] | None = None) -> RawResponse:
    """GET ``target`` sent byte for byte, as alice (HTTP clients re-encode queries)."""
    server = stack.client.server
    sent = stack.cookie(ALICE) | API | (headers or {})
    return await raw_request(server.host, server.port, "GET", target, sent)


async def assert_refused(
    stack: Stack, state: Browse, request_id: str, status: int, got: int, reason: str, body: Any
) -> None:
    """Refused with ``status`` and ``reason``, nothing reached the app, and it is audited."""
    assert got == status, body
    assert str(body["type"]).endswith(f"/{reason}"), body
    assert not state.reached(request_id), "the app saw the refused request"
    rows = await stack.audit_rows(request_id)
    request_row = next(r for r in rows if r["kind"] == "request")
    assert (request_row["decision"], request_row["reason"]) == ("deny", reason)
    assert [r["reason"] for r in rows if r["kind"] == "outcome"] == [reason]


TENANT_FILTERS = [
    "tenant=globex",
    "TENANT=globex",
    "Tenant=globex",
    "%74enant=globex",
    "%2574enant=globex",
    "tenant[]=globex",
    "tenant%5B%5D=globex",
    "tenant[0]=globex",
    "tenant.x=globex",
    "tenant=globex&tenant=globex",
    "page=1&tenant=globex&sort=name",
]


@pytest.mark.parametrize("query", TENANT_FILTERS)
async def test_a_tenant_filter_in_any_spelling_lists_only_the_callers_rows(
    tmp_path: Path, query: str
) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        response = await get(stack, f"/rows?{query}")
        assert response.status == 200, response.body
        request_id = response.headers["x-request-id"]
        listed = response.json()
        assert {row["tenant"] for row in listed["rows"]} == {"acme"}
        assert listed["count"] == 3, "the count is acme's own"
        sent = state.targets[request_id]
        pairs = parse_qsl(sent.partition("?")[2], keep_blank_values=True)
        assert [v for k, v in pairs if "enant" in k.lower() or "%" in k] == ["acme"], sent
        assert sent.endswith("tenant=acme")
        rows = await stack.audit_rows(request_id)
        audited = next(r for r in rows if r["kind"] == "request")
        assert audited["decision"] == "allow"
        data = json.loads(audited["data"])
        assert data["query"] == sent.partition("?")[2], "the audit has the query forwarded"
        assert f"the client's query was {query!r}" in data["explain"], "and the one sent"


async def test_a_list_without_a_filter_is_bound_too(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        response = await get(stack, "/rows?page=1")
        assert response.status == 200
        assert state.targets[response.headers["x-request-id"]] == "/rows?page=1&tenant=acme"
        assert response.json()["count"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "where=tenant%3D%27globex%27",
        "WHERE=tenant%3D%27globex%27",
        "wh%65re=tenant%3Dglobex",
        "where[]=tenant%3Dglobex",
        "page=1;where=tenant%3Dglobex",
        "_facet_tenant=1",
        "_FACET=tenant",
        "_facet[]=tenant",
        "limit=1000",
    ],
)
async def test_raw_filters_and_facets_are_refused(tmp_path: Path, query: str) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        response = await get(stack, f"/rows?{query}")
        request_id = response.headers["x-request-id"]
        await assert_refused(
            stack, state, request_id, 403, response.status, "param-forbidden", response.json()
        )
        assert "globex" not in response.body.decode()
        assert "is not accepted on this route" in response.json()["detail"], "names the parameter"


@pytest.mark.parametrize(
    "query", ["q=a&tenant=globex", "q=a&Tenant=globex", "q=a&filter[tenant]=x"]
)
async def test_a_denied_filter_is_refused_where_nothing_binds_it(
    tmp_path: Path, query: str
) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        response = await get(stack, f"/search?{query}")
        await assert_refused(
            stack,
            state,
            response.headers["x-request-id"],
            403,
            response.status,
            "param-forbidden",
            response.json(),
        )


async def test_a_required_parameter_that_is_missing_is_refused(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        for target in ("/search", "/search?Q=a", "/lines", "/lines?rows=1"):
            response = await get(stack, target)
            await assert_refused(
                stack,
                state,
                response.headers["x-request-id"],
                400,
                response.status,
                "param-missing",
                response.json(),
            )
        own = await get(stack, "/lines?row=1")
        assert own.status == 200
        foreign = await get(stack, "/lines?row=2")
        assert foreign.status == 404
        assert not state.reached(foreign.headers["x-request-id"])


async def test_a_bound_header_replaces_every_spelling_the_client_sent(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        response = await get(stack, "/by-header/rows", {"X-Tenant": "globex", "X_Tenant": "globex"})
        assert response.status == 200
        assert {row["tenant"] for row in response.json()["rows"]} == {"acme"}
        sent = state.headers[response.headers["x-request-id"]]
        assert [
            (k, v) for k, v in sent if "tenant" in k.lower() and "gatehold" not in k.lower()
        ] == [("X-Tenant", "acme")]


async def post(
    stack: Stack, target: str, body: bytes, content_type: str, method: str = "POST"
) -> tuple[int, Any, str]:
    headers = stack.cookie(ALICE) | API | {"Content-Type": content_type}
    response = await stack.client.request(method, target, data=body, headers=headers)
    return response.status, await response.json(), response.headers["X-Request-Id"]


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "reason", "status"),
    [
        (b'{"name": "x", "tenant": "globex"}', JSON, "tenant-mismatch", 403),
        (b'{"name": "x", "tenant": null}', JSON, "tenant-mismatch", 403),
        (b'{"name": "x", "Tenant": "globex"}', JSON, "param-ambiguous", 400),
        (b'{"tenant": "acme", "tenant": "globex"}', JSON, "body-invalid", 400),
        (b"name=x&tenant=globex", FORM, "tenant-mismatch", 403),
        (b"name=x&tenant=acme&tenant=globex", FORM, "tenant-mismatch", 403),
        (b"name=x&tenant[]=globex", FORM, "param-ambiguous", 400),
        (b"name=x&%74enant=globex", FORM, "tenant-mismatch", 403),
        (b"name=x;tenant=globex", FORM, "param-ambiguous", 400),
        (b'{"tenant": "globex"}', "text/plain", "body-unsupported", 415),
    ],
)
async def test_a_row_naming_another_tenant_is_refused(
    tmp_path: Path, body: bytes, content_type: str, reason: str, status: int
) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        got, answer, request_id = await post(stack, "/rows", body, content_type)
        await assert_refused(stack, state, request_id, status, got, reason, answer)
        assert len(state.rows) == 6, "no row was created"
        if reason == "tenant-mismatch":
            assert "not the request's tenant" in answer["detail"], answer


@pytest.mark.parametrize(
    ("body", "content_type", "forwarded"),
    [
        (b'{"name": "x"}', JSON, {"name": "x", "tenant": "acme"}),
        (b'{"name": "x", "tenant": "acme"}', JSON, None),
        (b"name=x", FORM, b"name=x&tenant=acme"),
        (b"name=x&tenant=acme", FORM, None),
    ],
)
async def test_a_row_is_created_in_the_callers_tenant(
    tmp_path: Path, body: bytes, content_type: str, forwarded: Any
) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        got, answer, request_id = await post(stack, "/rows", body, content_type)
        assert got == 201, answer
        assert answer["tenant"] == "acme"
        sent = state.bodies[request_id]
        if forwarded is None:
            assert sent == body, "a body naming the tenant goes exactly as sent"
        elif isinstance(forwarded, dict):
            assert json.loads(sent) == forwarded
        else:
            assert sent == forwarded
        headers = dict(state.headers[request_id])
        assert int(headers["Content-Length"]) == len(sent)


async def test_a_batch_must_name_the_tenant_in_every_row(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        mixed = b'{"rows": [{"tenant": "acme"}, {"tenant": "globex"}]}'
        got, answer, request_id = await post(stack, "/rows/import", mixed, JSON)
        await assert_refused(stack, state, request_id, 403, got, "tenant-mismatch", answer)
        unnamed = b'{"rows": [{"tenant": "acme"}, {"name": "b"}]}'
        got, answer, request_id = await post(stack, "/rows/import", unnamed, JSON)
        await assert_refused(stack, state, request_id, 403, got, "tenant-mismatch", answer)


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("PUT", "/rows/1", b'{"tenant": "globex"}'),
        ("PATCH", "/rows/1", b'{"name": "moved", "tenant": "globex"}'),
        ("POST", "/rows/1", b'{"_method": "PATCH", "tenant": "globex"}'),
    ],
)
async def test_an_update_cannot_move_the_callers_row_to_another_tenant(
    tmp_path: Path, method: str, target: str, body: bytes
) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        got, answer, request_id = await post(stack, target, body, JSON, method)
        await assert_refused(stack, state, request_id, 403, got, "tenant-mismatch", answer)
        assert state.rows[1]["tenant"] == "acme"


async def test_an_update_that_keeps_the_tenant_goes_through(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, state):
        got, answer, _ = await post(stack, "/rows/1", b'{"name": "renamed"}', JSON, "PATCH")
        assert got == 200 and answer == {"id": 1, "tenant": "acme", "name": "renamed"}
        got, _, request_id = await post(stack, "/rows/2", b'{"tenant": "acme"}', JSON, "PUT")
        assert got == 404, "globex's row is not found, whatever the body says"
        assert not state.reached(request_id)
        assert state.rows[2]["tenant"] == "globex"


async def test_simulate_refuses_what_live_traffic_refuses(tmp_path: Path) -> None:
    async with browse_stack(tmp_path) as (stack, _):
        gw = stack.app[GATEWAY]
        alice = await principal_for(gw, ALICE)
        assert alice is not None
        cases = [
            ("GET", "/rows?where=1", b"", "param-forbidden"),
            ("GET", "/search", b"", "param-missing"),
            ("POST", "/rows", b'{"tenant": "globex"}', "tenant-mismatch"),
            ("PUT", "/rows/1", b'{"tenant": "globex"}', "tenant-mismatch"),
            ("GET", "/rows?tenant=globex", b"", "role-allowed"),
        ]
        for method, target, body, reason in cases:
            found = await explain(gw, principal=alice, method=method, target=target, body=body)
            assert found.decision.reason.value == reason, (target, found.steps)
        bound = await explain(gw, principal=alice, method="GET", target="/rows?tenant=globex")
        assert "query tenant set to 'acme'" in bound.steps


async def test_a_caller_without_a_tenant_gets_no_list_at_all(tmp_path: Path) -> None:
    # olga holds a global role only: she has no active tenant to bind.
    async with browse_stack(tmp_path) as (stack, state):
        server = stack.client.server
        headers = stack.cookie("olga@example.test") | API
        response = await raw_request(server.host, server.port, "GET", "/rows?page=1", headers)
        await assert_refused(
            stack,
            state,
            response.headers["x-request-id"],
            403,
            response.status,
            "tenant-unselected",
            response.json(),
        )
