"""An object id is checked against its resource's id type, whatever the path template says.

The attack: a route's template may be looser than its resource (``{id:slug}`` or a plain
``{id}`` for an ``int``, ``uuid`` or ``regex:`` resource). The id was then checked only
against the template's type, so ids the resource declares impossible (``ORD-12x``,
``abc`` for an int) were looked up at the system of record and the request judged on
the answer; a ``regex:`` type was simply ignored. Now the resource's type decides, and
an id that does not fit is refused with 400 before any lookup. A ``regex:`` type that
does not compile is a problem of the rules file when it loads, not of a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.config.loader import load_rules_text
from gateway.errors import ConfigError
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
  invoice:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
  order:
    id_type: "regex:ORD-[0-9]{{4}}"
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
  doc:
    id_type: uuid
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
routes:
  - name: invoice-by-slug
    match: {{path: "/api/invoices/{{id:slug}}", methods: [GET]}}
    upstream: app
    resource: {{type: invoice, id: path.id}}
  - name: order-by-slug
    match: {{path: "/api/orders/{{id:slug}}", methods: [GET]}}
    upstream: app
    resource: {{type: order, id: path.id}}
  - name: order-plain
    match: {{path: "/api/order/{{id}}", methods: [GET]}}
    upstream: app
    resource: {{type: order, id: path.id}}
  - name: doc-rest
    match: {{path: "/api/docs/{{id:path}}", methods: [GET]}}
    upstream: app
    resource: {{type: doc, id: path.id}}
"""

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
OWNERS = {
    "7": "acme",
    "abc": "acme",
    "ORD-1234": "acme",
    "ORD-12x": "acme",
    "order-1": "acme",
    UUID: "acme",
    "not-a-uuid": "acme",
}


@asynccontextmanager
async def typed_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app", owners=dict(OWNERS)) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


@pytest.mark.parametrize(
    "path",
    [
        "/api/invoices/abc",
        "/api/invoices/7a",
        "/api/orders/ORD-12x",
        "/api/orders/order-1",
        "/api/order/ORD-12345",
        "/api/docs/not-a-uuid",
        f"/api/docs/{UUID}/x",
    ],
    ids=[
        "slug template, int resource",
        "digits and a letter, int resource",
        "slug template, regex resource",
        "slug template, regex resource, other form",
        "plain template, regex resource",
        "path template, uuid resource",
        "path template, uuid and more",
    ],
)
async def test_an_id_that_does_not_fit_its_resource_type_is_refused_before_any_lookup(
    tmp_path: Path, path: str
) -> None:
    async with typed_stack(tmp_path) as (stack, app):
        response = await stack.client.get(path, headers=stack.cookie("alice@acme.test") | API)
        assert response.status == 400, await response.text()
        assert (await response.json())["type"].endswith("/id-invalid")
        request_id = response.headers["X-Request-Id"]
        assert app.hit_count(request_id) == 0, "nothing reached the app"
        assert app.lookups == [], "no owner was looked up"
        rows = await stack.audit_rows(request_id)
        assert rows[0]["decision"] == "deny" and rows[0]["reason"] == "id-invalid"


@pytest.mark.parametrize(
    "path", ["/api/invoices/7", "/api/orders/ORD-1234", "/api/order/ORD-1234", f"/api/docs/{UUID}"]
)
async def test_an_id_of_the_resource_type_is_looked_up_and_forwarded(
    tmp_path: Path, path: str
) -> None:
    async with typed_stack(tmp_path) as (stack, app):
        response = await stack.client.get(path, headers=stack.cookie("alice@acme.test") | API)
        assert response.status == 200, await response.text()
        assert app.hit_count(response.headers["X-Request-Id"]) == 1
        assert app.lookups == [path.rsplit("/", 1)[1]]


@pytest.mark.parametrize("pattern", ["(", "[a-", "x{2,1}", "(?P<n>a)(?P<n>b)"])
def test_a_regex_id_type_that_does_not_compile_is_a_rules_problem(pattern: str) -> None:
    text = RULES.format(app="http://127.0.0.1:9").replace("ORD-[0-9]{4}", pattern)
    with pytest.raises(ConfigError) as raised:
        load_rules_text(text, source="rules.yaml", env={})
    [problem] = raised.value.problems
    assert problem.startswith("rules.yaml:15: resources.order.id_type: ")
    assert "not a valid regular expression" in problem
