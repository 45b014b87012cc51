"""Authenticator apps in real Chromium: set one up, sign in with a code or a recovery code.

No QR code is scanned: the test reads the key shown for typing by hand off the page and
computes the code with pyotp, as an authenticator app would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.conftest import accessibility_problems
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import running_stack
from tests.support.totp import enrol, mfa_settings, recovery_codes

pytestmark = pytest.mark.browser

WIDTHS = ((1280, "desktop"), (390, "phone"))


async def shoot(page: Page, shots: Path, name: str) -> None:
    """Screenshots of the page as shown, at desktop and phone width; axe must be clean."""
    for width, label in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        await page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
        assert await accessibility_problems(page) == [], f"{name} at {width}px"
    await page.set_viewport_size({"width": 1280, "height": 800})


class MagicLinks:
    def __init__(self, inbox: Inbox, base: str) -> None:
        self.inbox, self.base, self.sent = inbox, base, dict[str, int]()

    async def first_factor(self, page: Page, email: str, target: str) -> None:
        """From ``target`` through the login page and the mailed link's confirm button."""
        await page.goto(f"{self.base}{target}")
        await page.get_by_label("Email address").fill(email)
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your inbox").wait_for()
        self.sent[email] = self.sent.get(email, 0) + 1
        link = Inbox.link_in(await self.inbox.wait_for(email, count=self.sent[email]))
        await page.goto(link)
        await page.get_by_role("button", name="Sign in").click()


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    return context, await context.new_page()


async def test_sign_in_with_a_magic_link_and_an_authenticator_code(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mfa_settings(smtp_port)) as stack:
        base = f"http://127.0.0.1:{port}"
        secret = await enrol(stack, "alice@acme.test")
        await recovery_codes(stack, "alice@acme.test")
        links = MagicLinks(inbox, base)
        context, page = await new_page(browser)
        await links.first_factor(page, "alice@acme.test", "/api/invoices/7")
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        await page.get_by_role("heading", name="Confirm it is you").wait_for()
        await shoot(page, shots, "totp-verify")

        await page.get_by_label("Code from your authenticator app").fill("000000")
        if pyotp.TOTP(secret).verify("000000", valid_window=1):  # one in ~300,000 runs
            await page.get_by_label("Code from your authenticator app").fill("999999")
        await page.get_by_role("button", name="Confirm").click()
        await page.get_by_role("alert").wait_for()
        assert "That code is not right" in await page.get_by_role("alert").inner_text()
        await shoot(page, shots, "totp-verify-wrong")

        await page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        invoice = json.loads(await page.locator("body").inner_text())
        assert invoice["id"] == 7
        await context.close()
        logins = [e for e in await stack.events("login") if e["actor"] == "alice@acme.test"]
        assert [(e["data"]["factor"], e["data"]["mfa"]) for e in logins] == [("totp", "yes")]


async def test_set_up_an_authenticator_app_from_the_account_page(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mfa_settings(smtp_port)) as stack:
        base = f"http://127.0.0.1:{port}"
        links = MagicLinks(inbox, base)
        context, page = await new_page(browser)
        await links.first_factor(page, "bob@globex.test", "/.gatehold/account")
        await page.wait_for_url(f"{base}/.gatehold/account")
        await shoot(page, shots, "account-no-totp")
        await page.get_by_role("link", name="Set up an authenticator app").click()
        await page.get_by_role("heading", name="Set up an authenticator app").wait_for()
        assert await page.locator(".qr svg").count() == 1
        await shoot(page, shots, "totp-setup")

        secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
        await page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
        await page.get_by_role("button", name="Turn on").click()
        await page.get_by_role("heading", name="Save your recovery codes").wait_for()
        codes = await page.locator("ol.codes code").all_inner_texts()
        assert len(codes) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
        await shoot(page, shots, "totp-recovery-codes")

        await page.get_by_role("link", name="I have saved them").click()
        await page.get_by_role("status").wait_for()
        assert "authenticator app is set up" in await page.get_by_role("status").inner_text()
        assert "Recovery codes left: 10" in await page.locator("main").inner_text()
        shown = await page.content()
        assert not any(code in shown for code in codes)
        await shoot(page, shots, "account-with-totp")
        await context.close()

        # The next sign-in asks for a code from the new app.
        context, page = await new_page(browser)
        await links.first_factor(page, "bob@globex.test", "/.gatehold/account")
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        # The confirming code's step is used up: the app's next code (within the window).
        await page.get_by_label("Code from your authenticator app").fill(
            pyotp.TOTP(secret).at(time.time() + 30)
        )
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_url(f"{base}/.gatehold/account")
        await context.close()
        enrolled = await stack.events("totp-enrolled")
        assert [(e["actor"], e["data"]["via"]) for e in enrolled] == [
            ("bob@globex.test", "account")
        ]


async def test_sign_in_with_a_recovery_code(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mfa_settings(smtp_port)) as stack:
        base = f"http://127.0.0.1:{port}"
        await enrol(stack, "alice@acme.test")
        codes = await recovery_codes(stack, "alice@acme.test")
        links = MagicLinks(inbox, base)
        context, page = await new_page(browser)
        await links.first_factor(page, "alice@acme.test", "/api/invoices/7")
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        await page.get_by_text("Use a recovery code instead").click()
        await page.get_by_label("Recovery code").fill(codes[2].upper())
        await shoot(page, shots, "totp-verify-recovery")
        await page.get_by_role("button", name="Use recovery code").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        await context.close()

        context, page = await new_page(browser)
        await links.first_factor(page, "alice@acme.test", "/api/invoices/7")
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        await page.get_by_text("Use a recovery code instead").click()
        await page.get_by_label("Recovery code").fill(codes[2])
        await page.get_by_role("button", name="Use recovery code").click()
        await page.get_by_role("alert").wait_for()
        assert page.url == f"{base}/.gatehold/login/verify?error=code-wrong"
        await context.close()
        used = await stack.events("recovery-code-used")
        assert [(e["actor"], e["data"]["left"]) for e in used] == [("alice@acme.test", 9)]
