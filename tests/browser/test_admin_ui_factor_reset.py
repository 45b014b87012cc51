"""A person's second factors on their admin page, in real Chromium: shown, reset after
the confirm step with the keyboard only, screenshots at 1280 and 390 px, axe clean;
and the login page's offer to confirm with a second factor."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.app import ENGINE
from gateway.store.factors import Factors, factors_of
from tests.browser.admin_ui import ADMIN, UI, admin_page, base_url, capture
from tests.support.factors import enrol, mfa_rules, user_id
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser
ALICE = "alice@acme.test"


async def test_the_person_page_resets_second_factors_after_a_confirm_step(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        engine = stack.app[ENGINE]
        await enrol(engine, ALICE, codes=5, passkeys=1, password=True)
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(f"{base_url(stack)}{UI}/users/{ALICE}")
            await page.get_by_role("heading", name="Second factors").wait_for()
            summary = page.locator("details.confirm summary", has_text="Reset second factors")
            await summary.focus()
            await page.keyboard.press("Enter")
            button = page.get_by_role("button", name=f"Yes, reset the second factors of {ALICE}")
            await button.wait_for()
            assert await capture(page, "person-factors-reset-confirm") == []

            await page.keyboard.press("Tab")
            assert await button.evaluate("e => e === document.activeElement")
            await page.keyboard.press("Enter")
            await page.get_by_text("Second factors removed; sessions ended.").wait_for()
            assert await page.get_by_text("No second factor enrolled.").is_visible()
            assert await capture(page, "person-factors-reset-done") == []
        assert await factors_of(engine, await user_id(engine, ALICE)) == Factors(password=True)


async def test_the_login_page_offers_the_second_factor_to_a_signed_in_person(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules(), port=free_port()) as stack:
        await enrol(stack.app[ENGINE], ALICE)
        async with admin_page(browser, stack, ALICE) as page:
            await page.goto(f"{base_url(stack)}/api/invoices")
            assert "step_up=1&mfa=1" in page.url
            button = page.get_by_role("button", name="Confirm with your second factor")
            await button.wait_for()
            assert await capture(page, "login-step-up-offer") == []
            await button.click()
            await page.get_by_role("heading", name="Confirm it is you").wait_for()
            assert page.url.endswith("/.gatehold/login/verify")
