"""The rules journey in real Chromium: a superadmin edits the rules, sees the mistake at
its line, fixes it, simulates, previews the impact, activates (the gateway follows the
store, no restart) and rolls back; every page as shown passes axe."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.admin_ui import ADMIN, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, Stack, running_stack

pytestmark = pytest.mark.browser

RITA = "rita@acme.test"
INVOICE = "/api/invoices/7"
READONLY = "readonly: {can: [read]}"
NARROWED = "readonly: {can: [download]}"
MISTAKE = "readonly: {cann: [download]}"
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}


async def rita_reads(stack: Stack) -> int:
    async with stack.client.get(INVOICE, headers=stack.cookie(RITA)) as answer:
        return answer.status


async def runs(stack: Stack, version: int) -> None:
    """Wait until the gateway applied ``version`` (it polls the store)."""
    started = time.monotonic()
    while stack.follower.applied != version:
        assert time.monotonic() - started < 5, "the gateway never applied the version"
        await asyncio.sleep(0.05)


async def simulate_rita(page: Page) -> str:
    await page.get_by_label("As").select_option(f"user:{RITA}")
    await page.get_by_label("Method").select_option("GET")
    await page.get_by_label("Path", exact=True).fill(INVOICE)
    await page.get_by_role("button", name="Simulate").click()
    result = page.locator("#simulate-result")
    await result.get_by_role("heading", name="Why").wait_for()
    return await result.inner_text()


async def test_edit_check_fix_simulate_preview_activate_and_roll_back(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port(), follow=True, **ADMIN_MANAGED) as stack:
        first = stack.follower.applied
        assert await rita_reads(stack) == 200  # recent traffic for the impact preview
        await stack.settled()
        line = 1 + DEMO_RULES.read_text().split("\n").index(f"  {READONLY}")
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/rules")
            await page.get_by_role("heading", name="Active version").wait_for()
            assert f"Version\n{first}" in await page.locator("dl.facts").inner_text()
            assert await capture(page, "rules") == []

            editor = page.get_by_label("Rules draft (YAML)")
            original = await editor.input_value()
            assert READONLY in original
            await editor.fill(original.replace(READONLY, MISTAKE))
            await page.get_by_role("button", name="Check").click()
            problems = page.locator(f"#line-{line} .line-problem")
            await problems.first.wait_for()
            assert "unknown key 'cann'" in " ".join(await problems.all_inner_texts())
            await page.get_by_role("link", name=f"Line {line}").first.click()
            assert page.url.endswith(f"#line-{line}")
            assert MISTAKE in await editor.input_value(), "the editor keeps what was typed"
            assert await capture(page, "rules-inline-errors") == []

            await editor.fill(original.replace(READONLY, NARROWED))
            await page.get_by_label("Why (kept with the version)").fill("readonly only downloads")
            await page.get_by_role("button", name="Check").click()
            await page.get_by_text("No problems: this draft would be accepted.").wait_for()
            diff = page.get_by_role("region", name="Changes of the draft against the active")
            assert f"-  {READONLY}" in await diff.locator(".del").all_inner_texts()
            assert f"+  {NARROWED}" in await diff.locator(".add").all_inner_texts()
            assert await capture(page, "rules-diff") == []

            await page.get_by_role("button", name="Save draft").click()
            await page.get_by_role("heading", name="About this version").wait_for()
            draft = int(page.url.split("?")[0].rsplit("/", 1)[1])
            assert draft > first and "not active yet" in await page.locator(".notice").inner_text()

            verdict = await simulate_rita(page)
            assert "Refused" in verdict and f"version {draft}" in verdict
            assert await capture(page, "rules-simulate") == []

            await page.get_by_role("button", name="Preview impact").click()
            changes = page.get_by_role("region", name="Decisions that would change")
            row = changes.get_by_role("row").filter(has_text=RITA)
            await row.wait_for()
            assert "Allowed" in await row.inner_text() and "Refused" in await row.inner_text()
            assert await capture(page, "rules-impact") == []

            await page.get_by_label("Why (kept in the audit trail)").fill("rita reads no more")
            await page.get_by_role("button", name=f"Activate version {draft}").click()
            await page.get_by_text(f"Rules version {draft} is active now.").wait_for()
            facts = await page.locator("dl.facts").inner_text()
            assert f"Version\n{draft}" in facts and "rita reads no more" in facts

            await runs(stack, draft)  # no restart: the gateway follows the store
            hits = await stack.ledger_hits()
            assert await rita_reads(stack) == 403
            assert await stack.ledger_hits() == hits, "Ledger was not reached"

            await page.get_by_role("link", name="History: every version").click()
            await page.get_by_role("heading", name="Rules history").wait_for()
            assert await capture(page, "rules-history") == []
            await page.get_by_label(f"Why roll back to version {first}").fill("undo")
            await page.get_by_role("button", name=f"Roll back to {first}").click()
            await page.get_by_text(f"Rules version {first} is active again").wait_for()

        await runs(stack, first)
        reached = await stack.ledger_total()
        assert await rita_reads(stack) == 200
        assert await stack.ledger_total() > reached, "Ledger answers her again"
        activations = [e["data"] for e in await stack.events("rules-activated")][-2:]
        assert [(a["before"], a["after"], a["rollback"]) for a in activations] == [
            ({"version": first}, {"version": draft}, False),
            ({"version": draft}, {"version": first}, True),
        ]
        assert activations[0]["comment"] == "rita reads no more"


async def test_simulate_by_keyboard_alone(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port(), follow=True, **ADMIN_MANAGED) as stack:
        async with admin_page(browser, stack, "carol@acme.test") as page:
            await page.goto(base_url(stack) + UI + "/rules")
            await page.get_by_label("As").focus()
            for _ in range(3):  # anonymous, then the people of acme
                await page.keyboard.press("ArrowDown")
            assert (await page.get_by_label("As").input_value()).startswith("user:")
            await page.keyboard.press("Tab")  # method: GET
            await page.keyboard.press("Tab")
            await page.keyboard.type(INVOICE)
            await page.keyboard.press("Tab")  # version: the active one
            await page.keyboard.press("Tab")
            button = page.get_by_role("button", name="Simulate")
            assert await button.evaluate("e => e === document.activeElement")
            await page.keyboard.press("Enter")
            result = page.locator("#simulate-result")
            await result.get_by_role("heading", name="Why").wait_for()
            assert INVOICE in await result.inner_text()
            assert page.url.endswith("/rules"), "htmx put the answer in place"
