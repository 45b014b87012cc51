"""The audit trail in real Chromium: filter (by keyboard too), page back, read a record
with its outcome and chain position, export what the filter shows; a tenant admin
reads their tenant only."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.app import ENGINE
from gateway.store import audit_log
from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.browser.audit_pages import audit_rows
from tests.support.audit_traffic import ALICE, BOB, expected, make_traffic
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser


async def test_filter_page_read_and_export_the_trail(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        await make_traffic(stack)
        for _ in range(24):  # enough rows for a second page
            answer = await stack.client.get("/api/invoices/5", headers=stack.cookie(ALICE))
            assert answer.status == 200
        await stack.settled()
        engine = stack.app[ENGINE]

        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/audit")
            first = await audit_rows(page)
            seqs = [int(row["Seq"]) for row in first]
            assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
            # Newest first: only this page's own admin-ui row, written after it, is newer.
            assert seqs[0] == await audit_log.last_seq(engine) - 1
            assert await capture(page, "audit-list") == []
            await page.get_by_role("link", name="Older").click()
            older = [int(row["Seq"]) for row in await audit_rows(page)]
            assert older and older[0] < seqs[-1] and "cursor=" in page.url

            # As you type (htmx, when scripts run): the records follow the filter.
            await page.get_by_label("Route").fill("invoice-delete")
            await page.wait_for_url("**/audit?*route=invoice-delete*")
            await page.locator("table.audit tbody tr").nth(1).wait_for(state="detached")
            assert [(r["Person"], r["Route"]) for r in await audit_rows(page)] == [
                ("rita@acme.test", "invoice-delete")
            ]

            # Keyboard only: type a person into the filter and press Enter.
            await page.goto(base_url(stack) + UI + "/audit")
            await page.get_by_label("Person").focus()
            await page.keyboard.type(BOB)
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/audit?user=bob%40globex.test*")
            bobs = await audit_rows(page)
            assert [row["Decision"] for row in bobs] == ["allow", "deny"]
            assert await page.get_by_label("Person").input_value() == BOB

            await page.get_by_label("Decision").select_option("deny")
            await page.get_by_role("button", name="Apply filter").click()
            await page.wait_for_url("**decision=deny*")
            (denied,) = await audit_rows(page)
            assert (denied["Person"], denied["Tenant"], denied["Route"]) == (
                BOB,
                "acme",
                "invoice-read",
            )
            assert await capture(page, "audit-filtered") == []

            # The record: every field, its outcome, its place in the chain.
            await page.get_by_role("link", name=f"Record {denied['Seq']}").click()
            await page.get_by_role("heading", name=f"Audit record {denied['Seq']}").wait_for()
            stored = await audit_log.row_at(engine, int(denied["Seq"]))
            assert stored is not None
            text = await page.locator("main").inner_text()
            for value in (stored.prev_hash, stored.hash, stored.request_id, "tenant-foreign"):
                assert value in text
            outcome = page.locator("section", has=page.get_by_role("heading", name="Outcome"))
            assert "Status\n404" in await outcome.inner_text()
            data = json.loads(await page.locator("pre").inner_text())
            assert data == json.loads(stored.data)
            same = page.get_by_role("region", name="Other records of this request")
            assert "outcome" in await same.inner_text()
            assert await capture(page, "audit-detail") == []

            # Export what the filter shows (the export is audited with its filter).
            await page.go_back()
            for fmt, link in (("csv", "Export CSV"), ("jsonl", "Export JSON lines")):
                async with page.expect_download() as info:
                    await page.get_by_role("link", name=link).click()
                download = await info.value
                assert download.suggested_filename == f"audit.{fmt}"
                body = Path(await download.path()).read_text()
                if fmt == "csv":
                    rows = list(csv.DictReader(io.StringIO(body)))
                else:
                    rows = [json.loads(line) for line in body.splitlines()]
                assert [(r["actor"], r["decision"], int(r["seq"])) for r in rows] == [
                    (BOB, "deny", stored.seq)
                ]
            exported = await stack.events("audit-exported")
            assert [(e["actor"], e["data"]["format"], e["data"]["filter"]) for e in exported] == [
                (ADMIN, fmt, {"user": BOB, "decision": "deny"}) for fmt in ("csv", "jsonl")
            ]

            # A time that is not a time: the form again, as typed, with a message.
            answer = await page.goto(base_url(stack) + UI + f"/audit?user={BOB}&from=yesterday")
            assert answer is not None and answer.status == 422
            alert = page.get_by_role("alert")
            assert "from: 'yesterday' is neither ISO-8601 nor Unix seconds" in (
                await alert.inner_text()
            )
            assert await page.get_by_label("From (UTC)").input_value() == "yesterday"
            assert await page.get_by_label("From (UTC)").get_attribute("aria-invalid") == "true"
            assert await page.get_by_label("Person").get_attribute("aria-invalid") is None
            assert await page.get_by_label("Person").input_value() == BOB
            assert await capture(page, "audit-bad-filter") == []


async def test_a_tenant_admin_reads_only_their_tenant(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        await make_traffic(stack)
        engine = stack.app[ENGINE]
        requests = await stack.events("request")
        globex = next(row for row in requests if row["tenant"] == "globex")

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/audit?kind=request")
            rows = await audit_rows(page)
            assert {row["Tenant"] for row in rows} == {"acme"}
            assert len(rows) == len(expected(frozenset({"acme"})))
            assert await capture(page, "audit-tenant-admin") == []

            # Another tenant's record by its address: as if it did not exist.
            answer = await page.goto(base_url(stack) + UI + f"/audit/{globex['seq']}")
            assert answer is not None and answer.status == 404
            assert globex["request_id"] not in await page.content()
            missing = await page.goto(base_url(stack) + UI + "/audit/999999")
            assert missing is not None and missing.status == 404

            # Another tenant by the filter: refused, on the list and for an export.
            answer = await page.goto(base_url(stack) + UI + "/audit?tenant=globex")
            assert answer is not None and answer.status == 403
            assert (
                "does not administer tenant 'globex'"
                in await page.get_by_role("alert").inner_text()
            )
            assert await page.locator("table.audit").count() == 0
            before = await audit_log.last_seq(engine)
        export = await stack.client.get(
            UI + "/audit/export?format=csv&tenant=globex", headers=stack.cookie(CAROL)
        )
        assert export.status == 403 and "globex," not in await export.text()
        assert await stack.events("audit-exported") == []
        ui_rows = [row for row in await stack.events("admin-ui") if row["seq"] > before]
        assert [(r["actor"], r["decision"], r["reason"], r["path"]) for r in ui_rows] == [
            (CAROL, "deny", "refused-403", UI + "/audit/export")
        ]
