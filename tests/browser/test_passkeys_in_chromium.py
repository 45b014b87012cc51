"""Passkeys in real Chromium with the DevTools virtual authenticator.

A person signs in by email link, adds a passkey on the account page, signs out and signs
in with the passkey alone; then signs in by email link again and, having a passkey now,
confirms with it as the second step. WebAuthn needs a secure context and a domain RP id,
so the gateway knows itself as ``http://localhost:<port>`` (RP id ``localhost``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from gateway.auth.handlers import AUTH_PAGES
from tests.browser.conftest import ARGS, CHROMIUM, accessibility_problems
from tests.integration.test_magic_link import mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
async def localhost_browser() -> AsyncIterator[Browser]:
    """Chromium that finds ``localhost`` on 127.0.0.1 only (the test server's address)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            await launched.close()


ROAMING = {**AUTHENTICATOR, "transport": "usb"}
"""A security key on USB: a roaming authenticator, next to the platform one above."""


async def with_authenticator(
    context: BrowserContext, page: Page, options: dict[str, Any] = AUTHENTICATOR
) -> tuple[Any, str]:
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return cdp, str(added["authenticatorId"])


async def both_widths(page: Page, shots: Path, name: str) -> None:
    """Screenshots at desktop and phone width, and no accessibility problem at either."""
    for width, label in ((1280, "desktop"), (390, "phone")):
        await page.set_viewport_size({"width": width, "height": 800})
        await page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
        assert await accessibility_problems(page) == [], (name, label)
    await page.set_viewport_size({"width": 1280, "height": 800})


async def email_link_sign_in(
    page: Page, inbox: Inbox, base: str, rd: str, *, count: int = 1
) -> None:
    await page.goto(f"{base}/.gatehold/login?rd={rd}")
    await page.get_by_label("Email address").fill("alice@acme.test")
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.get_by_role("heading", name="Check your inbox").wait_for()
    await page.goto(Inbox.link_in(await inbox.wait_for("alice@acme.test", count=count)))
    await page.get_by_role("button", name="Sign in").click()


async def test_add_a_passkey_then_sign_in_with_it_alone_and_as_second_step(
    tmp_path: Path, smtp_server: tuple[Inbox, int], localhost_browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    base = f"http://localhost:{port}"
    settings = {**mail_settings(smtp_port), "server": {"public_url": base}}
    async with running_stack(tmp_path, port=port, **settings) as stack:
        context = await localhost_browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if m.type == "error" else None)
        cdp, authenticator = await with_authenticator(context, page)

        # Email link first: no passkey yet, so straight to the account page.
        await email_link_sign_in(page, inbox, base, "/.gatehold/account")
        await page.wait_for_url(f"{base}/.gatehold/account")
        await page.get_by_role("heading", name="Passkeys").wait_for()
        await both_widths(page, shots, "passkeys-account-empty")
        await page.get_by_label("Name for a new passkey").fill("Test laptop")
        await page.get_by_role("button", name="Add a passkey").click()
        await page.wait_for_url(f"{base}/.gatehold/account?notice=passkey-added")
        assert await page.get_by_role("cell", name="Test laptop", exact=True).is_visible()
        await both_widths(page, shots, "passkeys-account-added")
        stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        (credential,) = stored["credentials"]
        assert credential["isResidentCredential"] and credential["rpId"] == "localhost"

        # Sign out, then in with the passkey alone: no email typed.
        await page.goto(f"{base}/.gatehold/sessions")
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await page.wait_for_url(f"{base}/.gatehold/login?rd=/")
        await page.goto(f"{base}/api/invoices/7")
        assert page.url.startswith(f"{base}/.gatehold/login?rd=/api/invoices/7")
        await both_widths(page, shots, "passkeys-login")
        await page.get_by_role("button", name="Sign in with a passkey").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        invoice = json.loads(await page.locator("body").inner_text())
        assert invoice["id"] == 7 and invoice["tenant"] == "acme"
        login = (await stack.events("login"))[-1]
        assert login["method"] == "passkey" and login["data"]["mfa"] == "yes"

        # Email link again: now the passkey is asked as the second step.
        await page.goto(f"{base}/.gatehold/sessions")
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await page.wait_for_url(f"{base}/.gatehold/login?rd=/")
        await email_link_sign_in(page, inbox, base, "/api/invoices/7", count=2)
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        await page.get_by_role("heading", name="Use your passkey").wait_for()
        await both_widths(page, shots, "passkeys-verify")
        await page.get_by_role("button", name="Use your passkey").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        logins = await stack.events("login")
        assert [(x["method"], x["data"].get("factor")) for x in logins] == [
            ("magic-link", None),
            ("passkey", None),
            ("magic-link", "passkey"),
        ]
        used = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert used["credentials"][0]["signCount"] >= 2
        assert not [m for m in blocked if "Content Security Policy" in m], blocked
        await context.close()


@pytest.mark.parametrize("kind", ["platform", "roaming"])
async def test_set_up_a_passkey_when_the_rules_ask_for_a_second_step(
    tmp_path: Path,
    smtp_server: tuple[Inbox, int],
    localhost_browser: Browser,
    shots: Path,
    kind: str,
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    base = f"http://localhost:{port}"
    settings = {**mail_settings(smtp_port), "server": {"public_url": base}}
    async with running_stack(tmp_path, port=port, **settings) as stack:
        stack.app[AUTH_PAGES].mfa_required = lambda _: True
        context = await localhost_browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        cdp, authenticator = await with_authenticator(
            context, page, ROAMING if kind == "roaming" else AUTHENTICATOR
        )
        await email_link_sign_in(page, inbox, base, "/api/invoices/7")
        await page.wait_for_url(f"{base}/.gatehold/login/enrol")
        await page.get_by_role("heading", name="A passkey").wait_for()
        await both_widths(page, shots, f"passkeys-enrol-{kind}")
        await page.get_by_label("Name for this passkey").fill("Phone")
        await page.get_by_role("button", name="Set up a passkey").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        (added,) = await stack.events("passkey-registered")
        assert added["data"]["via"] == "enrol" and added["data"]["passkey"] == "Phone"
        (login,) = await stack.events("login")
        assert login["data"]["factor"] == "passkey" and login["data"]["mfa"] == "yes"
        stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(stored["credentials"]) == 1  # on this authenticator, platform or roaming
        await context.close()
