"""A person signs in with a magic link in real Chromium and lands where they wanted to go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import accessibility_problems
from tests.integration.test_magic_link import mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser


async def test_sign_in_by_email_link_and_land_on_the_page_asked_for(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mail_settings(smtp_port)) as stack:
        base = f"http://127.0.0.1:{port}"
        for width, name in ((1280, "desktop"), (390, "phone")):
            context = await browser.new_context(viewport={"width": width, "height": 800})
            page = await context.new_page()
            await page.goto(f"{base}/api/invoices/7")
            assert page.url.startswith(f"{base}/.gatehold/login?rd=/api/invoices/7")
            assert await page.get_by_role("heading", name="Sign in").is_visible()
            await page.screenshot(path=str(shots / f"login-{name}.png"), full_page=True)
            assert await accessibility_problems(page) == []
            await context.close()

        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{base}/api/invoices/7")
        await page.get_by_label("Email address").fill("alice@acme.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your inbox").wait_for()
        await page.screenshot(path=str(shots / "magic-link-sent.png"))
        assert await accessibility_problems(page) == []

        link = Inbox.link_in(await inbox.wait_for("alice@acme.test"))
        assert link.startswith(base)
        await page.goto(link)
        await page.get_by_role("heading", name="Confirm sign-in").wait_for()
        await page.screenshot(path=str(shots / "magic-link-confirm.png"))
        assert await accessibility_problems(page) == []
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        invoice = json.loads(await page.locator("body").inner_text())
        assert invoice["id"] == 7 and invoice["tenant"] == "acme"

        cookies = {c["name"]: c for c in await context.cookies()}
        session = cookies["__Host-gatehold"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"

        foreign = await page.goto(f"{base}/api/invoices/8")
        assert foreign is not None and foreign.status == 404
        await page.screenshot(path=str(shots / "not-found-page.png"))

        await page.goto(link)  # the link works once
        await page.get_by_role("heading", name="Sign-in did not work").wait_for()
        await page.screenshot(path=str(shots / "magic-link-used.png"))
        assert await accessibility_problems(page) == []
        await context.close()
        assert stack.cookies  # the stack stayed up for the whole flow
