"""Many object ids in one request: no lookup flood, no giant audit row, refusals first.

The attack: one 57 KB JSON body naming 3,000 ids made the gateway ask the system of
record 3,000 times and write a 405 KB audit row, even for a caller the route was going
to refuse anyway. Now: the route, the caller's roles and the enumeration block are
judged before any owner is looked up; a request naming more than
``policy.max_ids_per_request`` objects is refused with 400 before any lookup; lookups
in flight are bounded by ``policy.max_concurrent_lookups``; and the audit row keeps a
bounded list of objects plus their count.

Every lookup is counted at a real owner-lookup server (``scripted_upstream``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}

RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  readonly: {{can: [read]}}
  standard: {{can: [read, write, download]}}
  admin:    {{can: [read, write, delete, export, download, manage_users]}}
  operator: {{can: [read, write], scope: global}}
resources:
  thing:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
routes:
  - name: bulk-update
    match: {{path: "/api/things/bulk", methods: [POST]}}
    upstream: app
    body_ids: [{{type: thing, pointer: /ids/*}}]
  - name: thing-export
    match: {{path: "/api/things/{{id:int}}/export", methods: [POST]}}
    upstream: app
    action: export
    resource: {{type: thing, id: path.id}}
  - name: thing-read
    match: {{path: "/api/things/{{id:int}}", methods: [GET]}}
    upstream: app
    resource: {{type: thing, id: path.id}}
    query_ids: [{{type: thing, param: with}}]
"""

# Odd ids belong to acme, even ids to globex.
OWNERS = {str(i): ("acme" if i % 2 else "globex") for i in range(1, 10_000)}


@asynccontextmanager
async def flood_stack(
    tmp_path: Path, *, delay: float = 0.0, **policy: Any
) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app", owners=dict(OWNERS), delay=delay) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url), policy=policy) as stack,
    ):
        yield stack, app


async def assert_refused_unseen(
    stack: Stack, app: Scripted, response: ClientResponse, status: int, reason: str
) -> dict[str, Any]:
    """Refused with ``status``/``reason``, never forwarded, audited as a denial; the row."""
    assert response.status == status
    assert (await response.json())["type"].endswith(f"/{reason}")
    request_id = response.headers["X-Request-Id"]
    assert app.hit_count(request_id) == 0
    rows = await stack.audit_rows(request_id)
    assert rows[0]["decision"] == "deny" and rows[0]["reason"] == reason
    return rows[0]


def odd_ids(count: int) -> list[int]:
    return [2 * n + 1 for n in range(count)]


@pytest.mark.parametrize(
    ("person", "method", "path", "body"),
    [
        ("rita@acme.test", "POST", "/api/things/bulk", {"ids": [1, 3, 5]}),
        ("rita@acme.test", "POST", "/api/things/bulk", {"ids": [2, 4, 99_999]}),
        ("alice@acme.test", "POST", "/api/things/1/export", None),
        ("olga@example.test", "POST", "/api/things/2/export", None),
    ],
    ids=[
        "readonly caller writing her own tenant's ids",
        "readonly caller writing foreign and missing ids",
        "standard caller exporting",
        "global operator exporting",
    ],
)
async def test_a_caller_no_role_of_whom_allows_the_action_causes_no_lookup(
    tmp_path: Path, person: str, method: str, path: str, body: Any
) -> None:
    async with flood_stack(tmp_path) as (stack, app):
        response = await stack.client.request(
            method, path, json=body, headers=stack.cookie(person) | API
        )
        await assert_refused_unseen(stack, app, response, 403, "role-forbidden")
        assert app.lookups == [], "refused before any owner was looked up"


async def test_the_answer_to_a_role_refusal_does_not_depend_on_the_object(
    tmp_path: Path,
) -> None:
    async with flood_stack(tmp_path) as (stack, app):
        rita = stack.cookie("rita@acme.test") | API
        answers = []
        for ids in ([1], [2], [99_999]):  # her tenant's, another's, nobody's
            response = await stack.client.post("/api/things/bulk", json={"ids": ids}, headers=rita)
            body = await response.json()
            answers.append((response.status, body["type"], body["detail"]))
        assert len(set(answers)) == 1, answers
        assert app.lookups == []


async def test_a_blocked_id_guesser_causes_no_further_lookup(tmp_path: Path) -> None:
    enumeration = {"window": "60s", "slow_after": 1, "block_after": 2}
    async with flood_stack(tmp_path, enumeration=enumeration) as (stack, app):
        alice = stack.cookie("alice@acme.test") | API
        for guess in (2, 4):  # globex's
            assert (await stack.client.get(f"/api/things/{guess}", headers=alice)).status == 404
        assert app.lookups == ["2", "4"]
        own = await stack.client.get("/api/things/1", headers=alice)
        await assert_refused_unseen(stack, app, own, 429, "enumeration-blocked")
        bulk = await stack.client.post("/api/things/bulk", json={"ids": odd_ids(50)}, headers=alice)
        await assert_refused_unseen(stack, app, bulk, 429, "enumeration-blocked")
        assert app.lookups == ["2", "4"], "nothing looked up while blocked"


@pytest.mark.parametrize(
    ("count", "where"),
    [(3000, "body"), (101, "body"), (101, "query")],
    ids=["3,000 ids in a JSON body", "one over the cap in a body", "one over the cap in a query"],
)
async def test_too_many_ids_are_refused_before_any_lookup(
    tmp_path: Path, count: int, where: str
) -> None:
    async with flood_stack(tmp_path) as (stack, app):
        alice = stack.cookie("alice@acme.test") | API
        ids = odd_ids(count)
        if where == "body":
            body = json.dumps({"ids": ids}).encode()
            response = await stack.client.post(
                "/api/things/bulk",
                data=body,
                headers=alice | {"Content-Type": "application/json"},
            )
        else:
            query = "&".join(f"with={i}" for i in ids[1:])
            response = await stack.client.get(f"/api/things/{ids[0]}?{query}", headers=alice)
        row = await assert_refused_unseen(stack, app, response, 400, "ids-too-many")
        assert (await response.json())["title"] == "The request names too many objects"
        explain = json.loads(row["data"])["explain"]
        assert f"the request names {count} objects; at most 100 are accepted" in explain
        assert app.lookups == [], "not one owner lookup"
        assert len(row["data"]) < 4096, "a small audit row"


async def test_the_cap_itself_is_allowed_and_its_lookups_are_bounded(tmp_path: Path) -> None:
    async with flood_stack(
        tmp_path, delay=0.02, max_ids_per_request=100, max_concurrent_lookups=4
    ) as (stack, app):
        alice = stack.cookie("alice@acme.test") | API
        first, second = await asyncio.gather(
            stack.client.post("/api/things/bulk", json={"ids": odd_ids(100)}, headers=alice),
            stack.client.post(
                "/api/things/bulk", json={"ids": [i + 1000 for i in odd_ids(100)]}, headers=alice
            ),
        )
        assert first.status == second.status == 200
        assert len(app.lookups) == 200
        assert 1 < app.max_concurrent <= 4, app.max_concurrent
        rows = await stack.audit_rows(first.headers["X-Request-Id"])
        data = json.loads(rows[0]["data"])
        assert data["object_count"] == 100
        assert 0 < len(data["objects"]) <= 20
        assert len(rows[0]["data"]) < 8192, "the row stays small with 100 objects"


async def test_the_id_cap_is_configurable(tmp_path: Path) -> None:
    async with flood_stack(tmp_path, max_ids_per_request=3) as (stack, app):
        alice = stack.cookie("alice@acme.test") | API
        ok = await stack.client.post("/api/things/bulk", json={"ids": [1, 3, 5]}, headers=alice)
        assert ok.status == 200
        over = await stack.client.post(
            "/api/things/bulk", json={"ids": [1, 3, 5, 7]}, headers=alice
        )
        await assert_refused_unseen(stack, app, over, 400, "ids-too-many")
        assert sorted(app.lookups) == ["1", "3", "5"]
