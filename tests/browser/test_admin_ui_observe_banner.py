"""Observe mode in the admin UI, in real Chromium: a banner on every page while any route
observes, the observed requests in the audit trail, and no banner once the window closed.

Screenshots: ``test-artifacts/admin-ui/observe-banner-*.png`` and ``observe-audit-*.png``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.config.observe_window import stamp
from gateway.live import LIVE
from tests.browser.admin_ui import ADMIN, UI, admin_page, base_url, capture
from tests.browser.audit_pages import audit_rows
from tests.support.observing import observing_rules
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser


def shown(until: float) -> str:
    """The banner's form of a time: ``2026-12-01 18:00 UTC``."""
    text = stamp(until)
    return f"{text[:10]} {text[11:16]} UTC"


async def test_the_banner_names_observing_routes_on_every_page_until_they_enforce(
    tmp_path: Path, browser: Browser
) -> None:
    until = time.time() + 3 * 86400
    rules = observing_rules(until, **{"invoice-delete": "enforce"})
    async with running_stack(tmp_path, rules_text=rules, port=free_port()) as stack:
        observed = await stack.client.get(
            "/api/invoices/8", headers=stack.cookie("alice@acme.test")
        )
        assert observed.status == 200
        async with admin_page(browser, stack, ADMIN) as page:
            for section in ("/", "/users", "/rules"):
                await page.goto(base_url(stack) + UI + section)
                banner = page.get_by_role("region", name="Observe mode: refusals are not enforced")
                await banner.wait_for()
                text = await banner.inner_text()
                assert "invoice-read" in text and shown(until) in text
                assert "invoice-delete" not in text, "an enforcing route is not listed"
                assert "public-assets" not in text, "a public route has nothing to observe"
                assert "more route" in text  # twelve by name, the rest counted
            await page.goto(base_url(stack) + UI + "/")
            assert await capture(page, "observe-banner") == []

            await page.get_by_role("link", name="See what would have been refused").click()
            await page.wait_for_url("**/audit?decision=observed")
            row = page.locator("tbody tr", has_text="invoice-read").first
            await row.wait_for()
            assert "observed" in await row.inner_text()
            assert "would deny: tenant-foreign" in await row.inner_text()
            assert await capture(page, "observe-audit") == []

            await row.get_by_role("link").click()
            await page.get_by_text("forwarded in observe mode; the rules would deny it").wait_for()

            stack.app[LIVE].current.clock = lambda: until + 1  # the window has closed
            await page.goto(base_url(stack) + UI + "/")
            await page.get_by_role("heading", name="Dashboard", level=1).wait_for()
            assert await page.get_by_role("region", name="Observe mode").count() == 0


async def test_the_dashboard_counts_observed_requests_apart_and_leads_to_them(
    tmp_path: Path, browser: Browser
) -> None:
    rules = observing_rules(time.time() + 86400)
    async with running_stack(tmp_path, rules_text=rules, port=free_port()) as stack:
        alice = stack.cookie("alice@acme.test")
        for path, status in (("/api/invoices/8", 200), ("/api/invoices/7", 200)):
            assert (await stack.client.get(path, headers=alice)).status == status
        await stack.settled()
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/")
            assert await page.locator("#total-requests").inner_text() == "2"
            assert await page.locator("#total-denied").inner_text() == "0"
            observed = page.locator("#total-observed")
            assert await observed.inner_text() == "1"
            panel = page.locator(".panel", has=observed)
            assert "the rules would refuse" in await panel.inner_text()
            chart = page.get_by_role("group", name=re.compile("^Requests per hour"))
            assert "1 forwarded in observe mode" in (await chart.get_attribute("aria-label") or "")
            assert await capture(page, "dashboard-observed") == []

            await observed.click()
            await page.get_by_role("heading", name="Audit trail").wait_for()
            assert "decision=observed" in page.url
            assert await page.get_by_label("Decision").input_value() == "observed"
            rows = await audit_rows(page)
            assert [(row["Route"], row["Decision"], row["Reason"]) for row in rows] == [
                ("invoice-read", "observed", "would deny: tenant-foreign")
            ]
