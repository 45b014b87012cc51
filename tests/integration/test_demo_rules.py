"""The demo rules at work: guard, step-up, learned owners, file downloads, sign-in paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.context import GATEWAY
from tests.support.stack import running_stack

API = {"Accept": "application/json"}


async def test_guard_filters_a_leaking_list_down_to_the_callers_tenant(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            "/api/reports/recent", headers=stack.cookie("alice@acme.test")
        )
        assert response.status == 200
        items = (await response.json())["items"]
        assert items, "acme has reports"
        assert {item["tenant"] for item in items} == {"acme"}
        unguarded = await stack.http.get(  # type: ignore[union-attr]
            f"{stack.ledger_url}/api/reports/recent"
        )
        leaked = {item["tenant"] for item in (await unguarded.json())["items"]}
        assert leaked == {"acme", "globex"}, "Ledger itself leaks every tenant"


async def test_export_needs_a_recent_sign_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stale = await stack.mint("admin@example.test", auth_age=3600)
        response = await stack.client.post(
            "/api/invoices/export", headers={"Cookie": f"__Host-gatehold={stale}"} | API
        )
        assert response.status == 401
        body = await response.json()
        assert body["type"].endswith("/step-up-required")
        assert "step_up=1" in body["login"]
        assert await stack.ledger_hits() == {} or response.headers["X-Request-Id"] not in (
            await stack.ledger_hits()
        )
        fresh = await stack.client.post(
            "/api/invoices/export", headers=stack.cookie("admin@example.test")
        )
        assert fresh.status == 200


async def test_a_report_created_through_the_gateway_is_owned_by_its_tenant(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        created = await stack.client.post(
            "/api/reports", json={"title": "Q3"}, headers=stack.cookie("alice@acme.test")
        )
        assert created.status == 201
        location = created.headers["Location"]
        path = "/" + location.split("/", 3)[3] if location.startswith("http") else location
        mine = await stack.client.get(path, headers=stack.cookie("rita@acme.test"))
        assert mine.status == 200, "a colleague in acme may read it"
        theirs = await stack.client.get(path, headers=stack.cookie("bob@globex.test") | API)
        assert theirs.status == 404, "globex may not"


async def test_file_downloads_get_safe_headers(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for doc in (1, 3, 5):
            response = await stack.client.get(
                f"/files/{doc}", headers=stack.cookie("alice@acme.test")
            )
            assert response.status == 200
            disposition = response.headers["Content-Disposition"]
            assert disposition.startswith("attachment;")
            assert "/" not in disposition.split("filename=")[1].split(";")[0]
            assert ".." not in disposition
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "private, no-store"


async def test_foreign_and_missing_objects_get_the_very_same_answer(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        foreign = await stack.client.get(
            "/api/invoices/8", headers=stack.cookie("alice@acme.test") | API
        )
        missing = await stack.client.get(
            "/api/invoices/999", headers=stack.cookie("alice@acme.test") | API
        )
        assert foreign.status == missing.status == 404
        a, b = await foreign.json(), await missing.json()
        a.pop("request_id"), b.pop("request_id")
        assert a == b


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "/\\evil.example", "https://evil.example"],
    ids=["protocol-relative", "backslash", "absolute URL"],
)
async def test_browsers_are_sent_to_sign_in_and_never_off_site(tmp_path: Path, target: str) -> None:
    from tests.support.rawhttp import raw_request

    async with running_stack(tmp_path) as stack:
        server = stack.client.server
        direct = await raw_request(server.host, server.port, "GET", target, {"Accept": "text/html"})
        assert direct.status == 400
        assert "location" not in direct.headers
        page = await stack.client.get(f"/.gatehold/login?rd={target}")
        assert page.status == 200
        assert "<code>/</code>" in await page.text()
        assert page.headers["Referrer-Policy"] == "no-referrer"


async def test_an_anonymous_browser_is_redirected_to_sign_in_with_the_path(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            "/api/invoices/7?x=1", headers={"Accept": "text/html"}, allow_redirects=False
        )
        assert response.status == 302
        assert response.headers["Location"] == "/.gatehold/login?rd=/api/invoices/7%3Fx%3D1"


async def test_an_anonymous_api_client_gets_401_problem_json(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get("/api/invoices/7", headers=API)
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["status"] == 401
        assert body["request_id"] == response.headers["X-Request-Id"]


async def test_a_forged_cookie_is_refused_and_cleared(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": "__Host-gatehold=forged"} | API
        )
        assert response.status == 401
        assert (await response.json())["type"].endswith("/session-invalid")
        assert "__Host-gatehold=" in response.headers.get("Set-Cookie", "")


async def test_denied_browser_gets_a_friendly_page_with_a_way_to_ask(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.put(
            "/api/invoices/7",
            json={"status": "x"},
            headers=stack.cookie("rita@acme.test") | {"Accept": "text/html"},
        )
        assert response.status == 403
        page = await response.text()
        assert "Request access" in page
        assert response.headers["X-Request-Id"] in page
        assert "Traceback" not in page


GUARD_BLOCK_RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}"}
roles:
  standard: {can: [read]}
routes:
  - name: leaky-list
    match: {path: "/api/reports/recent", methods: [GET]}
    upstream: ledger
    guard: {tenant_field: "/items/*/tenant", mode: block}
  - name: own-list
    match: {path: "/api/invoices", methods: [GET]}
    upstream: ledger
    guard: {tenant_field: "/items/*/tenant", mode: block}
"""


async def test_guard_in_block_mode_refuses_an_answer_with_foreign_rows(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=GUARD_BLOCK_RULES) as stack:
        leaky = await stack.client.get(
            "/api/reports/recent", headers=stack.cookie("alice@acme.test") | API
        )
        assert leaky.status == 502
        body = await leaky.json()
        assert body["type"].endswith("/guard-blocked")
        assert "globex" not in json.dumps(body)
        rows = await stack.audit_rows(leaky.headers["X-Request-Id"])
        assert '"status":502' in rows[-1]["data"].replace(" ", "")
        own = await stack.client.get("/api/invoices", headers=stack.cookie("alice@acme.test"))
        assert own.status == 200, "an answer with only the caller's tenant passes"


async def test_id_guessing_is_slowed_then_blocked_and_raised_as_an_alert(tmp_path: Path) -> None:
    enumeration = {"enumeration": {"window": "60s", "slow_after": 2, "block_after": 4}}
    async with running_stack(tmp_path, policy=enumeration) as stack:
        alice = stack.cookie("alice@acme.test") | API
        statuses = []
        for invoice in (2, 4, 6, 8):  # globex's: alice is guessing
            response = await stack.client.get(f"/api/invoices/{invoice}", headers=alice)
            statuses.append(response.status)
        assert statuses == [404, 404, 404, 404]
        blocked = await stack.client.get("/api/invoices/7", headers=alice)
        assert blocked.status == 429, "even her own invoice, for a while"
        assert (await blocked.json())["type"].endswith("/enumeration-blocked")
        bob = await stack.client.get("/api/invoices/8", headers=stack.cookie("bob@globex.test"))
        assert bob.status == 200, "others are unaffected"
        metrics = stack.app[GATEWAY].metrics.exposition().decode()
        assert "gatehold_enumeration_alerts_total 1.0" in metrics
        await stack.audit_rows("-")  # let queued events commit
        async with stack.app[ENGINE].connect() as conn:
            kinds = [r[0] for r in await conn.execute(text("SELECT kind FROM audit_log"))]
        assert "enumeration-blocked" in kinds


FORM_RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}"}
roles:
  standard: {can: [read, write]}
resources:
  invoice:
    id_type: int
    owner: {http: "GET {upstream}/internal/invoices/{id}", tenant_field: /tenant}
routes:
  - name: legacy-form
    match: {path: "/api/echo/pay", methods: [POST]}
    upstream: ledger
    form_ids: [{type: invoice, field: invoice}]
"""


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ("invoice=7&amount=1", 200),
        ("invoice=8&amount=1", 404),
        ("invoice=7&invoice=8", 404),
        ("invoice=seven", 400),
        ("invoice=7&_method=DELETE", 405),
    ],
    ids=[
        "own invoice",
        "foreign invoice",
        "one foreign among several",
        "malformed id",
        "method override to a method the route lacks",
    ],
)
async def test_ids_in_form_bodies_are_checked_too(tmp_path: Path, form: str, status: int) -> None:
    async with running_stack(tmp_path, rules_text=FORM_RULES) as stack:
        response = await stack.client.post(
            "/api/echo/pay",
            data=form,
            headers=stack.cookie("alice@acme.test")
            | API
            | {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == status
        if status == 200:
            assert (await response.json())["body_bytes"] == len(form), "the body went on intact"
        else:
            assert response.headers["X-Request-Id"] not in await stack.ledger_hits()
