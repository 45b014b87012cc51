"""The admin UI's frame in real Chromium: who gets in, the navigation, the keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser


async def test_admins_get_in_others_get_the_normal_refusal(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI)
            assert page.url == base_url(stack) + UI + "/"
            await page.get_by_role("heading", name="Dashboard", level=1).wait_for()
            assert "(superadmin)" in await page.locator("header").inner_text()
            nav = page.get_by_role("navigation", name="Admin sections")
            current = nav.locator("[aria-current=page]")
            assert await current.inner_text() == "Dashboard"

            # Keyboard: the first Tab reaches the skip link, visibly; Enter moves to main.
            await page.keyboard.press("Tab")
            skip = page.get_by_role("link", name="Skip to content")
            assert await skip.evaluate("e => e === document.activeElement")
            assert (await skip.bounding_box() or {"x": -1})["x"] >= 0
            await page.keyboard.press("Enter")
            assert await page.evaluate("document.activeElement.id") == "main"

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/")
            assert "(admin of acme)" in await page.locator("header").inner_text()

        async with admin_page(browser, stack, "alice@acme.test") as page:
            answer = await page.goto(base_url(stack) + UI + "/users")
            assert answer is not None and answer.status == 403
            await page.get_by_role("heading", name="You do not have access to this").wait_for()
            assert await page.get_by_role("navigation", name="Admin sections").count() == 0

        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/no-such-page")
            await page.get_by_role("heading", name="Not found").wait_for()
            assert await capture(page, "not-found") == []


async def test_not_signed_in_is_sent_to_sign_in_and_back(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(base_url(stack) + UI + "/users?q=acme")
        login = base_url(stack) + "/.gatehold/login?rd=/.gatehold/admin/users%3Fq%3Dacme"
        assert page.url == login
        await context.close()
