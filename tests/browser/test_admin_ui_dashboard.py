"""The dashboard in real Chromium: its figures are the traffic just made, every chart
element leads to the audit rows it counts, and a tenant admin sees their tenant only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.browser.audit_pages import audit_rows
from tests.integration.test_magic_link import ask_for_link, follow_link, mail_settings
from tests.support.audit_traffic import ALICE, BOB, expected, make_traffic
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser


async def sign_in_by_mail(stack: Stack, inbox: Inbox, email: str) -> None:
    """A real sign-in by mailed link (a ``login`` row)."""
    assert (await ask_for_link(stack, email)).status == 200
    link = Inbox.link_in(await inbox.wait_for(email))
    assert (await follow_link(stack, link)).status == 303
    await stack.settled()


async def ranking(page: Page, table: str) -> list[list[str]]:
    """The rows of a ranking table as text (name, numbers…), bars left out."""
    rows = page.locator(f"#{table} tbody tr")
    return [
        [cell.strip() for cell in (await rows.nth(n).locator("td").all_inner_texts())[:-1]]
        for n in range(await rows.count())
    ]


async def figure(page: Page, name: str) -> int:
    return int(await page.locator(f"#total-{name}").inner_text())


async def test_the_figures_are_the_traffic_and_lead_to_its_audit_rows(
    tmp_path: Path, browser: Browser, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp_server
    async with running_stack(tmp_path, port=free_port(), **mail_settings(smtp_port)) as stack:
        await make_traffic(stack)
        await sign_in_by_mail(stack, inbox, ALICE)
        calls = expected()
        denied = [call for call in calls if call.decision == "deny"]

        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/")
            assert await figure(page, "requests") == len(calls) == 8
            assert await figure(page, "denied") == len(denied) == 5
            assert await figure(page, "logins") == 1
            requests_chart = page.get_by_role("group", name=re.compile("^Requests per hour"))
            assert await requests_chart.get_attribute("aria-label") == (
                "Requests per hour: 8 in 24 hours, 5 denied"
            )
            assert await ranking(page, "denied-routes") == [
                ["invoice-read", "2"],
                ["invoice-delete", "1"],
                ["invoice-list", "1"],
            ]
            assert await ranking(page, "callers") == [
                [ALICE, "4", "2"],
                [BOB, "2", "1"],
                ["anonymous", "1", "1"],
                ["rita@acme.test", "1", "1"],
            ]
            # The table behind the charts, opened by keyboard: the same numbers.
            summary = page.locator("summary", has_text="The figures per hour as a table")
            await summary.focus()
            await page.keyboard.press("Enter")
            await page.locator("#hourly").wait_for()
            columns = [
                await page.locator(f"#hourly tbody td:nth-of-type({n})").all_inner_texts()
                for n in (1, 2, 3)
            ]
            assert [sum(map(int, column)) for column in columns] == [3, 5, 1]
            assert await capture(page, "dashboard") == []

            # A denial bar → the audit rows of its hour, denied requests only.
            bar = page.get_by_role("group", name=re.compile("^Denied requests")).locator("a").first
            title = await bar.get_attribute("aria-label") or ""
            counted = int(re.search(r": (\d+) denied", title).group(1))  # type: ignore[union-attr]
            await bar.click()
            await page.get_by_role("heading", name="Audit trail").wait_for()
            assert "decision=deny" in page.url and "kind=request" in page.url
            assert "from=" in page.url and "to=" in page.url
            assert await page.get_by_label("Decision").input_value() == "deny"
            rows = await audit_rows(page)
            assert len(rows) == counted and {row["Decision"] for row in rows} == {"deny"}

            # A route → its denied requests.
            await page.goto(base_url(stack) + UI + "/")
            await page.locator("#denied-routes").get_by_role("link", name="invoice-read").click()
            await page.get_by_role("heading", name="Audit trail").wait_for()
            rows = await audit_rows(page)
            assert [(row["Route"], row["Decision"]) for row in rows] == [
                ("invoice-read", "deny")
            ] * 2
            assert await page.get_by_label("Route").input_value() == "invoice-read"

            # A caller → their requests.
            await page.goto(base_url(stack) + UI + "/")
            await page.locator("#callers").get_by_role("link", name=ALICE).click()
            await page.get_by_role("heading", name="Audit trail").wait_for()
            rows = await audit_rows(page)
            assert len(rows) == 4 and {row["Person"] for row in rows} == {ALICE}
            assert await page.get_by_label("Person").input_value() == ALICE

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/")
            acme = expected(frozenset({"acme"}))
            assert await figure(page, "requests") == len(acme) == 3
            assert await figure(page, "denied") == 1
            assert await figure(page, "logins") == 0, "sign-ins carry no tenant"
            assert await ranking(page, "denied-routes") == [["invoice-read", "1"]]
            assert await ranking(page, "callers") == [[ALICE, "2", "0"], [BOB, "1", "1"]]
            assert "Figures of acme only" in await page.locator("main").inner_text()
            assert await capture(page, "dashboard-tenant-admin") == []
            await page.locator("#callers").get_by_role("link", name=BOB).click()
            await page.get_by_role("heading", name="Audit trail").wait_for()
            rows = await audit_rows(page)
            assert [(row["Tenant"], row["Decision"]) for row in rows] == [("acme", "deny")]

        requests = await stack.events("request")
        assert len(requests) == len(calls), "browsing the admin pages made no gateway requests"
