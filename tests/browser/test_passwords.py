"""Local passwords in real Chromium: chosen after an invite, reset by email link, refused
when common. Every page at 1280 and 390 px (``test-artifacts/passwords/``), axe-clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.admin_ui import ADMIN, admin_page, base_url
from tests.browser.conftest import ARTIFACTS, accessibility_problems
from tests.browser.test_admin_ui_invite_journey import DANA, invite_dana
from tests.support.passwords import ALICE_PASSWORD, give_password, password_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "passwords"
DANA_PASSWORD = "Seven lanterns over a quiet harbour"


async def capture(page: Page, name: str) -> list[str]:
    """Screenshots at 1280 and 390 px, and axe-core's problems at each."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        problems += [f"{width}px: {p}" for p in await accessibility_problems(page)]
    await page.set_viewport_size({"width": 1280, "height": 900})
    return problems


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    return context, await context.new_page()


async def sign_in_with_password(page: Page, stack: Stack, email: str, password: str) -> None:
    await page.goto(f"{base_url(stack)}/.gatehold/login?rd=/.gatehold/sessions")
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in with password").click()
    await page.get_by_role("heading", name="Your sessions").wait_for()
    assert email in await page.locator("main").inner_text()


async def choose_password(page: Page, password: str) -> None:
    await page.get_by_label("New password", exact=True).fill(password)
    await page.get_by_label("Repeat the new password").fill(password)
    await page.get_by_role("button", name="password").click()


async def test_an_invitee_chooses_a_password_and_signs_in_with_it(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **password_settings(smtp_port)) as stack:
        async with admin_page(browser, stack, ADMIN) as admin:
            await invite_dana(admin, stack)
        context, page = await new_page(browser)
        await page.goto(Inbox.link_in(await inbox.wait_for(DANA)))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Choose a password").wait_for()
        assert await page.get_by_label("Current password").count() == 0
        assert await page.get_by_role("link", name="Not now").is_visible()
        assert await capture(page, "choose-after-invite") == []
        await choose_password(page, DANA_PASSWORD)
        await page.get_by_role("heading", name="Password saved").wait_for()
        assert await capture(page, "saved") == []

        await page.goto(f"{base_url(stack)}/.gatehold/sessions")
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await page.get_by_role("heading", name="Sign in").wait_for()
        assert await capture(page, "login-with-password-form") == []
        await page.get_by_label("Email", exact=True).fill(DANA)
        await page.get_by_label("Password", exact=True).fill("not the password at all")
        await page.get_by_role("button", name="Sign in with password").click()
        alert = page.get_by_role("alert")
        assert await alert.inner_text() == "That email and password do not match."
        assert await capture(page, "login-mismatch") == []
        await sign_in_with_password(page, stack, DANA, DANA_PASSWORD)
        await context.close()
        [event] = await stack.events("password-set")
        assert event["actor"] == DANA


async def test_forgot_password_resets_it_by_email_link(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **password_settings(smtp_port)) as stack:
        await give_password(stack, "alice@acme.test")
        context, page = await new_page(browser)
        await page.goto(f"{base_url(stack)}/.gatehold/login?rd=/.gatehold/sessions")
        await page.get_by_role("link", name="Forgot your password?").click()
        await page.get_by_role("heading", name="Forgot your password?").wait_for()
        assert await capture(page, "forgot") == []
        await page.get_by_label("Email address").fill("alice@acme.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your inbox").wait_for()
        await page.goto(Inbox.link_in(await inbox.wait_for("alice@acme.test")))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Change your password").wait_for()
        assert await page.get_by_label("Current password").count() == 0, "a fresh email link"
        assert await capture(page, "reset") == []
        await choose_password(page, "Blue kettles argue quietly at dawn")
        await page.get_by_role("heading", name="Password saved").wait_for()
        await page.get_by_role("link", name="Continue").click()
        await page.get_by_role("heading", name="Your sessions").wait_for()
        await context.close()

        context, page = await new_page(browser)
        await page.goto(f"{base_url(stack)}/.gatehold/login")
        await page.get_by_label("Email", exact=True).fill("alice@acme.test")
        await page.get_by_label("Password", exact=True).fill(ALICE_PASSWORD)
        await page.get_by_role("button", name="Sign in with password").click()
        await page.get_by_role("alert").wait_for()  # the old password no longer works
        await sign_in_with_password(
            page, stack, "alice@acme.test", "Blue kettles argue quietly at dawn"
        )
        await context.close()
        assert [e["actor"] for e in await stack.events("password-reset")] == ["alice@acme.test"]


async def test_a_common_password_is_refused_with_a_clear_message(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **password_settings(smtp_port)) as stack:
        context, page = await new_page(browser)
        await page.goto(f"{base_url(stack)}/.gatehold/login")
        await page.get_by_label("Email address").fill("alice@acme.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your inbox").wait_for()
        await page.goto(Inbox.link_in(await inbox.wait_for("alice@acme.test")))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Choose a password").wait_for()
        await choose_password(page, "qwerty123456")
        alert = page.get_by_role("alert")
        await alert.wait_for()
        text = await alert.inner_text()
        assert "The password was not saved" in text and "common passwords" in text
        assert await capture(page, "refused-common") == []
        await choose_password(page, "alice in the harbour at night")
        assert "alice" in await page.get_by_role("alert").inner_text()
        await choose_password(page, DANA_PASSWORD)
        await page.get_by_role("heading", name="Password saved").wait_for()
        await context.close()
        reasons = [e["reason"] for e in await stack.events("password-refused")]
        assert reasons == ["password-common", "password-contains-name"]
