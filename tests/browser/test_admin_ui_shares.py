"""The Shares page in real Chromium: an admin shares a file, sees the link once, the
recipient's page shows only a hint of the address, and the htmx Revoke button kills
the link at once (screenshots and axe-core at each state)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.admin_ui import CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser
PARTNER = "bob@partner.test"


async def test_an_admin_shares_a_file_and_revokes_the_link(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        ui = base_url(stack) + UI
        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(ui + "/shares")
            await page.get_by_text("No live share links.").wait_for()
            assert await capture(page, "shares-empty") == []

            await page.get_by_label("File path").fill("/files/1")
            await page.get_by_label("For (email)").fill(PARTNER)
            await page.get_by_label("Expires after").fill("2h")
            await page.get_by_role("button", name="Create link").click()
            link = page.get_by_role("textbox", name="New link")
            await link.wait_for()
            url = await link.input_value()
            assert url.startswith(base_url(stack) + "/.gatehold/share/")
            rows = page.get_by_role("region", name="Live share links").locator("tbody tr")
            await expect(rows).to_have_count(1)
            assert await capture(page, "shares-minted") == []

            stranger = await browser.new_context()
            try:
                visitor = await stranger.new_page()
                await visitor.goto(url)
                text = await visitor.locator("main").inner_text()
                assert "b***@p***.test" in text and PARTNER not in text
                assert await visitor.get_by_role("button", name="Email me a sign-in link").count()

                await page.goto(ui + "/shares")
                await page.get_by_role("button", name="Revoke share link 1").click()
                await page.get_by_text("Share link 1 revoked.").wait_for()
                await page.get_by_text("No live share links.").wait_for()
                assert await capture(page, "shares-revoked") == []

                gone = await visitor.goto(url)
                assert gone is not None and gone.status == 404
            finally:
                await stranger.close()
