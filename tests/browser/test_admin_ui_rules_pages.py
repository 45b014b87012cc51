"""The rules pages in real Chromium: hostile text stays text everywhere it is shown, the
file in charge makes the page read-only, and a tenant admin sees only what is theirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page
from yarl import URL

from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, running_stack

pytestmark = pytest.mark.browser

RITA = "rita@acme.test"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
QUERY_IMG = "<img/src=x/onerror=alert(1)>"
"""The same attack without spaces, so it fits in a request's query as sent."""
RULES = DEMO_RULES.read_text()
NARROWED = RULES.replace("readonly: {can: [read]}", "readonly: {can: [download]}")
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}


async def inert(page: Page, *texts: str) -> None:
    """Each text is shown as text, and no element it spells exists in the page."""
    shown = await page.locator("main").inner_text()
    for text in texts:
        assert text in shown, text
    assert await page.locator("main img, main script, main [onerror]").count() == 0


async def test_hostile_names_and_comments_stay_text(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port(), follow=True, **ADMIN_MANAGED) as stack:
        search = URL(f"/api/search?invoice=7&note={QUERY_IMG}", encoded=True)
        async with stack.client.get(search, headers=stack.cookie(RITA)) as answer:
            assert answer.status == 200
        await stack.settled()
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/rules")
            editor = page.get_by_label("Rules draft (YAML)")
            await editor.fill(RULES.replace("name: invoice-list", f'name: "{IMG}"'))
            await page.get_by_role("button", name="Check").click()
            await page.get_by_role("alert").wait_for()
            await inert(page, IMG)
            assert IMG in await editor.input_value()

            await editor.fill(NARROWED + f"# {IMG} {SCRIPT}\n")
            await page.get_by_label("Why (kept with the version)").fill(SCRIPT)
            await page.get_by_role("button", name="Check").click()
            await page.get_by_text("No problems").wait_for()
            await inert(page, f"+# {IMG} {SCRIPT}")
            await page.get_by_role("button", name="Save draft").click()
            await page.get_by_role("heading", name="About this version").wait_for()
            await inert(page, f"# {IMG} {SCRIPT}", SCRIPT)

            await page.get_by_label("As").select_option(f"user:{RITA}")
            await page.get_by_label("Path", exact=True).fill(f"/api/{IMG}")
            await page.get_by_role("button", name="Simulate").click()
            await page.locator("#simulate-result").get_by_role("heading", name="Why").wait_for()
            await inert(page, f"/api/{IMG}")

            await page.get_by_role("button", name="Preview impact").click()
            changed = page.get_by_role("region", name="Decisions that would change")
            await changed.wait_for()
            await inert(page, f"note={QUERY_IMG}")

            await page.get_by_label("Why (kept in the audit trail)").fill(SCRIPT)
            await page.get_by_role("button", name="Activate version").click()
            await page.get_by_text("is active now").wait_for()
            await inert(page, SCRIPT)
            await page.goto(base_url(stack) + UI + "/rules/versions")
            await inert(page, SCRIPT)
            await page.get_by_role("link", name="Diff").first.click()
            await page.get_by_role("heading", name="Rules version").wait_for()
            await inert(page, f"# {IMG} {SCRIPT}")


async def test_file_in_charge_is_read_only_and_tenant_admins_see_their_own(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port(), follow=True) as stack:
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/rules")
            await page.get_by_role("heading", name="Managed by the rules file").wait_for()
            text = await page.locator("main").inner_text()
            assert str(DEMO_RULES) in text and "SIGHUP" in text
            assert await page.locator("textarea").count() == 0
            assert await page.get_by_role("button", name="Save draft").count() == 0
            assert await page.get_by_role("list", name="Active rules with line numbers").count()
            assert await capture(page, "rules-file-mode") == []
            await page.goto(base_url(stack) + UI + "/rules/versions")
            assert await page.get_by_role("button", name="Roll back").count() == 0
            await page.get_by_role("link", name="View version 1").click()
            await page.get_by_role("heading", name="Rules version 1").wait_for()
            assert await page.get_by_role("button", name="Activate").count() == 0

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/rules")
            await page.get_by_role("heading", name="Changing the rules").wait_for()
            people = await page.get_by_label("As").inner_text()
            assert RITA in people and "globex" not in people
            await page.get_by_label("As").select_option(f"user:{RITA}")
            await page.get_by_label("Path", exact=True).fill("/api/invoices/7")
            await page.get_by_role("button", name="Simulate").click()
            await page.locator("#simulate-result").get_by_text("Allowed", exact=True).wait_for()
            assert await capture(page, "rules-tenant-admin") == []

            # A crafted form: a person of another tenant. Refused, and htmx shows why.
            await page.locator("#sim-caller option:checked").evaluate(
                "o => { o.value = 'user:bob@globex.test' }"
            )
            async with page.expect_response(lambda r: r.url.endswith("/simulate")) as sent:
                await page.get_by_role("button", name="Simulate").click()
            assert (await sent.value).status == 404
            refusal = page.locator("#simulate-result").get_by_role("alert")
            assert "no user 'bob@globex.test'" in await refusal.inner_text()
            assert await capture(page, "rules-simulate-refused") == []

            answer = await page.goto(base_url(stack) + UI + "/rules/versions/1")
            assert answer is not None and answer.status == 403
            await page.get_by_role("alert").get_by_text("only a superadmin").wait_for()
            await page.goto(base_url(stack) + UI + "/rules/versions")
            await page.get_by_role("heading", name="Rules history").wait_for()
            assert await page.get_by_role("link", name="View version 1").count() == 0
