"""Driving the admin UI in real Chromium: a signed-in admin's browser, and each page's
screenshots (1280 px and 390 px, in ``test-artifacts/admin-ui/``) with axe-core's check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.conftest import ARTIFACTS, accessibility_problems
from tests.support.stack import Stack

ADMIN = "admin@example.test"
"""The demo superadmin."""
CAROL = "carol@acme.test"
"""The demo admin of acme only."""
UI = "/.gatehold/admin"
WIDTHS = (1280, 390)
SHOTS = ARTIFACTS / "admin-ui"


def base_url(stack: Stack) -> str:
    return stack.settings.server.public_url


async def signed_in_context(
    browser: Browser, stack: Stack, email: str, *, width: int = 1280
) -> BrowserContext:
    """A browser context holding a fresh session of ``email`` (as after a sign-in)."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    token = await stack.mint(email)
    await context.add_cookies(
        [
            {
                "name": "__Host-gatehold",
                "value": token,
                "domain": "127.0.0.1",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    return context


@asynccontextmanager
async def admin_page(
    browser: Browser, stack: Stack, email: str = ADMIN, *, width: int = 1280
) -> AsyncIterator[Page]:
    """A page of ``email``'s signed-in browser. A dialog (``alert``) that opens, or
    anything the Content-Security-Policy blocked (an inline script or style, an event
    handler attribute), fails the test."""
    context = await signed_in_context(browser, stack, email, width=width)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    blocked: list[str] = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield page
    finally:
        await context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert blocked == [], f"the CSP blocked: {blocked}"


async def capture(page: Page, name: str) -> list[str]:
    """Screenshots of the page as shown at every width, and axe-core's problems at each.

    Returns every accessibility problem found (the caller asserts it is empty). The
    viewport is put back to its width afterwards.
    """
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or {"width": 1280, "height": 900}
    problems: list[str] = []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        problems += [f"{width}px: {problem}" for problem in await accessibility_problems(page)]
    await page.set_viewport_size(before)
    return problems


def shot_path(name: str, width: int) -> Path:
    return SHOTS / f"{name}-{width}.png"
