"""Tenant binding in front of Ledger: what its echo endpoint receives is the binding.

Ledger's ``/api/echo`` answers with the raw target and headers it got, so the test
reads off the app's own answer that the query and header carry the caller's tenant,
once, whatever the client sent, and that the rest of the target is byte for byte the
canonical one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rawhttp import raw_request
from tests.support.stack import running_stack

RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 10s}
roles:
  standard: {can: [read, write]}
  readonly: {can: [read]}
routes:
  - name: echo
    match: {path: /api/echo, methods: [GET]}
    upstream: ledger
    query: {deny: [where, "_facet*"]}
    bind: {query: {tenant: caller.tenant}, headers: {X-Tenant: caller.tenant}}
"""


@pytest.mark.parametrize(
    ("who", "tenant"), [("alice@acme.test", "acme"), ("bob@globex.test", "globex")]
)
async def test_ledger_receives_the_callers_tenant_and_nothing_the_client_chose(
    tmp_path: Path, who: str, tenant: str
) -> None:
    other = "globex" if tenant == "acme" else "acme"
    async with running_stack(tmp_path, rules_text=RULES) as stack:
        server = stack.client.server
        headers = stack.cookie(who) | {
            "Accept": "application/json",
            "X-Tenant": other,
            "x_tenant": other,
        }
        target = f"/api/echo?q=a%20b&TENANT={other}&tenant%5B%5D={other}&page=2"
        for method in ("GET", "HEAD"):
            response = await raw_request(server.host, server.port, method, target, headers)
            assert response.status == 200, response.body
        echoed = (await raw_request(server.host, server.port, "GET", target, headers)).json()
        assert echoed["raw_path"] == f"/api/echo?q=a%20b&page=2&tenant={tenant}"
        bound = {k: v for k, v in echoed["headers"].items() if k.lower() == "x-tenant"}
        assert bound == {"X-Tenant": tenant}
        assert echoed["headers"]["X-Gatehold-Tenant"] == tenant


async def test_a_denied_filter_never_reaches_ledger(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=RULES) as stack:
        server = stack.client.server
        headers = stack.cookie("alice@acme.test") | {"Accept": "application/json"}
        before = await stack.ledger_total()
        response = await raw_request(
            server.host, server.port, "GET", "/api/echo?_facet_tenant=1", headers
        )
        assert response.status == 403
        assert response.json()["type"].endswith("/param-forbidden")
        assert "_facet_tenant" in response.json()["detail"]
        assert await stack.ledger_total() == before
        rows = await stack.audit_rows(response.headers["x-request-id"])
        assert [(r["kind"], r["reason"]) for r in rows] == [
            ("request", "param-forbidden"),
            ("outcome", "param-forbidden"),
        ]
