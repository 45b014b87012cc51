"""The Users and Tenants pages in real Chromium: every page and state seen (screenshots
and axe-core), search as you type and without script, who sees whom, ids changed in
the address, a keyboard-only action, and hostile names shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.app import ENGINE
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(1)>"


async def test_every_page_and_state_for_a_superadmin(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        ui = base_url(stack) + UI
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(ui + "/users")
            rows = page.get_by_role("region", name="People").locator("tbody tr")
            assert await rows.count() == 6
            assert await capture(page, "users-list") == []

            await page.get_by_label("Search by email or name").press_sequentially("globex")
            await page.get_by_role("link", name="bob@globex.test").wait_for()
            await expect(rows).to_have_count(1)
            assert page.url == ui + "/users", "search as you type swaps only the table"
            assert await capture(page, "users-search") == []

            await page.goto(ui + "/users?q=RITA")  # the plain form's address, no script needed
            assert await rows.count() == 1
            await page.get_by_role("link", name="rita@acme.test").click()
            await page.get_by_role("heading", name="rita@acme.test", level=1).wait_for()
            assert await capture(page, "person") == []

            await page.goto(ui + "/users/invite")
            assert await capture(page, "invite-form") == []
            await page.get_by_label("Email address").fill("dana@nowhere")
            await page.get_by_label("Name").fill("Dana")
            await page.get_by_label("Role").select_option("standard")
            await page.get_by_role("button", name="Send the invite").click()
            await page.get_by_role("alert").wait_for()
            assert "not a plain email address" in await page.get_by_role("alert").inner_text()
            assert await page.get_by_label("Email address").input_value() == "dana@nowhere"
            assert await page.get_by_label("Role").input_value() == "standard"
            assert await capture(page, "invite-form-error") == []

            await page.goto(ui + "/tenants")
            assert await capture(page, "tenants-list") == []
            await page.get_by_label("Id").fill("initech")
            await page.get_by_label("Display name").fill("Initech")
            await page.get_by_role("button", name="Create tenant").click()
            await page.get_by_role("heading", name="Initech", level=1).wait_for()

            await page.goto(ui + "/tenants/acme")
            await page.get_by_role("link", name="alice@acme.test").wait_for()
            assert await capture(page, "tenant") == []
            await keyboard_deactivates_a_tenant(page, stack)


async def keyboard_deactivates_a_tenant(page: Page, stack: Stack) -> None:
    """The confirm step and the real button, with Tab and Enter only."""
    await page.goto(base_url(stack) + UI + "/tenants/initech")
    summary = page.locator("details.confirm summary")
    await summary.focus()
    await page.keyboard.press("Enter")
    assert await page.locator("details.confirm").get_attribute("open") is not None
    assert await capture(page, "tenant-confirm-deactivate") == []
    await page.keyboard.press("Tab")
    button = page.get_by_role("button", name="Yes, deactivate initech")
    assert await button.evaluate("e => e === document.activeElement")
    await page.keyboard.press("Enter")
    await page.get_by_role("status").wait_for()
    assert "Tenant initech deactivated" in await page.get_by_role("status").inner_text()
    row = await tenant_store.get_tenant(stack.app[ENGINE], "initech")
    assert row is not None and not row.active
    [event] = await stack.events("tenant-deactivated")
    assert event["data"]["before"]["active"] and not event["data"]["after"]["active"]


async def test_a_tenant_admin_sees_only_their_tenant(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        ui = base_url(stack) + UI
        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(ui + "/users")
            listed = await page.get_by_role("region", name="People").inner_text()
            assert "alice@acme.test" in listed and "globex" not in listed
            await page.goto(ui + "/users?q=bob")
            assert "Nobody matches" in await page.locator("#users-results").inner_text()

            await page.goto(ui + "/tenants")
            assert await page.get_by_role("link", name="globex").count() == 0
            assert await page.get_by_role("button", name="Create tenant").count() == 0

            for path in ("/users/bob@globex.test", "/tenants/globex", "/users/bob@GLOBEX.test"):
                answer = await page.goto(ui + path)
                assert answer is not None and answer.status == 404, path
                await page.get_by_role("alert").wait_for()
                assert "standard" not in await page.locator("main").inner_text()
            assert await capture(page, "refused-other-tenant") == []
            # Another spelling of the same address is refused before any page runs.
            answer = await page.goto(ui + "/users/bob%40globex.test")
            assert answer is not None and answer.status == 400

            await page.goto(ui + "/users/admin@example.test")
            assert await page.get_by_role("cell", name="globex").count() == 0
            await page.get_by_role("button", name="Deactivate (ends every session)").click()
            await page.get_by_text("also belongs elsewhere").wait_for()
        bob = await user_store.get_user_by_email(stack.app[ENGINE], "bob@globex.test")
        admin = await user_store.get_user_by_email(stack.app[ENGINE], ADMIN)
        assert bob is not None and bob.active and admin is not None and admin.active
        denied = [e for e in await stack.events("admin-ui") if e["decision"] == "deny"]
        assert [e["reason"] for e in denied] == ["refused-404"] * 3 + ["refused-403"]


async def test_hostile_names_show_as_text(tmp_path: Path, browser: Browser) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        ui = base_url(stack) + UI
        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(ui + "/tenants")
            await page.get_by_label("Id").fill("evil")
            await page.get_by_label("Display name").fill(IMG_NAME)
            await page.get_by_role("button", name="Create tenant").click()
            await page.get_by_role("heading", name=IMG_NAME, level=1).wait_for()
            await page.goto(ui + "/users/invite")
            await page.get_by_label("Email address").fill("mallory@evil.test")
            await page.get_by_label("Name").fill(SCRIPT_NAME)
            await page.get_by_label("Tenant").select_option("evil")
            await page.get_by_label("Role").select_option("readonly")
            await page.get_by_role("button", name="Send the invite").click()
            await page.get_by_role("heading", name=SCRIPT_NAME, level=1).wait_for()

            for path, shown in (
                ("/users", SCRIPT_NAME),
                ("/users/mallory@evil.test", SCRIPT_NAME),
                ("/tenants", IMG_NAME),
                ("/tenants/evil", IMG_NAME),
                ("/tenants/evil", SCRIPT_NAME),
            ):
                await page.goto(ui + path)
                literal = page.locator("main").get_by_text(shown, exact=True)
                visible = [await m.is_visible() for m in await literal.all()]
                assert True in visible, (path, shown, visible)
                assert await page.locator("main script, main img").count() == 0, path
            assert await capture(page, "tenant-hostile-names") == []
