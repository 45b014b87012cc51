"""The shadow page in real Chromium: start a version in shadow from its page, see the
differences grouped by route and reason, and activate a clean shadow with one button.
Screenshots at both widths, no accessibility problem, hostile text stays text."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from gateway.app import ENGINE
from gateway.shadow import SHADOW
from gateway.shadow_sync import SHADOW_FOLLOWER
from gateway.store import rule_versions as version_store
from tests.browser.admin_ui import ADMIN, UI, admin_page, base_url, capture, shot_path
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, Stack, running_stack

pytestmark = pytest.mark.browser

RULES = DEMO_RULES.read_text()
WRITE_NOT_READ = RULES.replace("readonly: {can: [read]}", "readonly: {can: [write]}")
SAME_DECISIONS = RULES + "# the same rules, one comment more\n"
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}
SCRIPT = "<script>alert(1)</script>"


async def traffic(stack: Stack) -> None:
    await stack.app[SHADOW_FOLLOWER].step()
    for email, target in (
        ("rita@acme.test", "/api/invoices"),
        ("alice@acme.test", "/api/invoices/1"),
    ):
        async with stack.client.get(target, headers=stack.cookie(email)) as answer:
            assert answer.status == 200
    await stack.settled()
    await stack.app[SHADOW].writer.flush()


async def start_from_its_page(page: Page, stack: Stack, version: int, why: str) -> None:
    await page.goto(f"{base_url(stack)}{UI}/rules/versions/{version}")
    await page.locator("#shadow-comment").fill(why)
    await page.get_by_role("button", name=f"Start version {version} in shadow").click()
    await page.get_by_text(f"Rules version {version} runs in shadow.").wait_for()


async def test_start_read_and_activate_a_shadow_in_chromium(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port(), follow=True, **ADMIN_MANAGED) as stack:
        engine = stack.app[ENGINE]
        noisy = await version_store.add_version(
            engine, WRITE_NOT_READ, author="admin", comment="", now=1.0
        )
        same = await version_store.add_version(
            engine, SAME_DECISIONS, author="admin", comment="", now=2.0
        )
        async with admin_page(browser, stack, ADMIN) as page:
            await start_from_its_page(page, stack, noisy.id, SCRIPT)
            await traffic(stack)
            await page.reload()
            groups = page.get_by_role("region", name="Differences, the most frequent first")
            await groups.wait_for()
            row = groups.get_by_role("row").nth(1)
            assert "invoice-list" in await row.inner_text()
            assert "DENY role-forbidden" in await row.inner_text()
            await row.get_by_text("1 sample(s)").click()
            await row.get_by_text("by rita@acme.test in acme").wait_for()
            assert await page.get_by_role("button", name="Activate version").count() == 0
            assert SCRIPT in await page.locator("main").inner_text()
            assert await page.locator("main script").count() == 0
            assert await capture(page, "rules-shadow-differences") == []
            await page.get_by_role("button", name="Stop the shadow").click()
            await page.get_by_text("stopped.").first.wait_for()

            await start_from_its_page(page, stack, same.id, "same decisions")
            await traffic(stack)
            await page.reload()
            await page.get_by_text("clean: no differences over 2 decisions").wait_for()
            assert await capture(page, "rules-shadow-clean") == []
            await page.get_by_role("button", name=f"Activate version {same.id}").click()
            await page.get_by_text(f"Rules version {same.id} is active now").wait_for()
        assert await version_store.active_id(engine) == same.id
        assert shot_path("rules-shadow-differences", 1280).stat().st_size > 10_000
