"""Owners are learned only from the resource's declared create route, never re-learned.

The attack: ``learn_on_create`` took an owner from the ``Location`` of any allowed
``201``. A caller who could make any route answer ``201 Location: /api/reports/x``
(an echo, a redirecting form, another app behind the gateway) registered ``x`` to
their own tenant, and then read it. Now only a route that declares ``creates: report``
teaches the owner of a report, from a same-origin ``Location`` naming that resource's
object route on the same upstream, and only for an id that has no owner yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.app import ENGINE
from gateway.store import registry
from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}

RULES = """
version: 1
upstreams:
  ledger: {{url: "${{LEDGER_URL}}"}}
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
resources:
  report: {{id_type: slug, owner: {{registry: true, learn_on_create: true}}}}
  memo: {{id_type: slug, owner: {{registry: true, learn_on_create: true}}}}
routes:
  - name: report-create
    match: {{path: "/api/reports", methods: [POST]}}
    upstream: ledger
    creates: report
  - name: report-read
    match: {{path: "/api/reports/{{report_id:slug}}", methods: [GET]}}
    upstream: ledger
    resource: {{type: report, id: path.report_id}}
  - name: memo-create
    match: {{path: "/api/memos", methods: [POST]}}
    upstream: app
    creates: memo
  - name: memo-read
    match: {{path: "/api/memos/{{memo_id:slug}}", methods: [GET, PUT]}}
    upstream: app
    resource: {{type: memo, id: path.memo_id}}
  - name: notes
    match: {{path: "/api/notes", methods: [POST]}}
    upstream: app
"""


@asynccontextmanager
async def create_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app") as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        await registry.set_owner(stack.app[ENGINE], "memo", "m-globex-1", "globex")
        yield stack, app


def created(location: str, status: int = 201) -> Answer:
    return Answer.json({"ok": True}, status=status, headers={"Location": location})


UNTAUGHT = {
    "a 201 from a route that creates nothing": (
        "POST",
        "/api/notes",
        "/api/reports/x-stolen",
        ("report", "x-stolen"),
    ),
    "a 201 from another resource's create route": (
        "POST",
        "/api/memos",
        "/api/reports/x-crossed",
        ("report", "x-crossed"),
    ),
    "a 201 from a route that reads and updates": (
        "PUT",
        "/api/memos/m-acme-9",
        "/api/memos/m-updated",
        ("memo", "m-updated"),
    ),
    "a create route's Location on another host": (
        "POST",
        "/api/memos",
        "http://elsewhere.test/api/memos/m-elsewhere",
        ("memo", "m-elsewhere"),
    ),
    "a create route answering 200, not 201": (
        "POST",
        "/api/memos",
        "/api/memos/m-not-created",
        ("memo", "m-not-created"),
    ),
}


@pytest.mark.parametrize(
    ("method", "path", "location", "object_key"), UNTAUGHT.values(), ids=UNTAUGHT.keys()
)
async def test_no_owner_is_learned_outside_the_resources_create_route(
    tmp_path: Path, method: str, path: str, location: str, object_key: tuple[str, str]
) -> None:
    async with create_stack(tmp_path) as (stack, app):
        await registry.set_owner(stack.app[ENGINE], "memo", "m-acme-9", "acme")
        status = 200 if "200" in location or "not-created" in location else 201
        app.answers[path] = created(location, status)
        alice = stack.cookie("alice@acme.test") | API
        response = await stack.client.request(method, path, json={}, headers=alice)
        assert response.status == status, "the upstream's answer went through"
        assert await registry.get_owner(stack.app[ENGINE], *object_key) is None
        kind, object_id = object_key
        read = await stack.client.get(f"/api/{kind}s/{object_id}", headers=alice)
        assert read.status == 404
        assert (await read.json())["type"].endswith("/object-not-found")
        request_id = read.headers["X-Request-Id"]
        assert app.hit_count(request_id) == 0
        assert request_id not in await stack.ledger_hits()
        audit = await stack.audit_rows(request_id)
        assert (audit[0]["decision"], audit[0]["reason"]) == ("deny", "object-not-found")


async def test_an_id_that_has_an_owner_is_never_re_owned(tmp_path: Path) -> None:
    async with create_stack(tmp_path) as (stack, app):
        app.answers["/api/memos"] = created("/api/memos/m-globex-1")
        alice = stack.cookie("alice@acme.test") | API
        response = await stack.client.post("/api/memos", json={}, headers=alice)
        assert response.status == 201
        assert await registry.get_owner(stack.app[ENGINE], "memo", "m-globex-1") == "globex"
        read = await stack.client.get("/api/memos/m-globex-1", headers=alice)
        assert read.status == 404
        assert app.hit_count(read.headers["X-Request-Id"]) == 0
        bob = await stack.client.get(
            "/api/memos/m-globex-1", headers=stack.cookie("bob@globex.test")
        )
        assert bob.status == 200, "the owner still reaches it"


@pytest.mark.parametrize(
    "location",
    ["/api/memos/m-new-1", "http://gatehold.test/api/memos/m-new-1"],
    ids=["relative Location", "Location on the gateway's own origin"],
)
async def test_the_create_route_teaches_the_owner_of_a_new_id(
    tmp_path: Path, location: str
) -> None:
    async with create_stack(tmp_path) as (stack, app):
        app.answers["/api/memos"] = created(location)
        alice = stack.cookie("alice@acme.test") | API
        assert (await stack.client.post("/api/memos", json={}, headers=alice)).status == 201
        assert await registry.get_owner(stack.app[ENGINE], "memo", "m-new-1") == "acme"
        assert (await stack.client.get("/api/memos/m-new-1", headers=alice)).status == 200
        theirs = await stack.client.get(
            "/api/memos/m-new-1", headers=stack.cookie("bob@globex.test") | API
        )
        assert theirs.status == 404


async def test_a_report_created_on_its_create_route_is_learned(tmp_path: Path) -> None:
    async with create_stack(tmp_path) as (stack, _app):
        alice = stack.cookie("alice@acme.test") | API
        response = await stack.client.post("/api/reports", json={"title": "Q4"}, headers=alice)
        assert response.status == 201
        slug = response.headers["Location"].rsplit("/", 1)[1]
        assert await registry.get_owner(stack.app[ENGINE], "report", slug) == "acme"
