"""One person's whole journey in real Chromium: a password sign-in, a page that needs a
second factor, setting up an authenticator app right there, then signing in again with
password and code.

The pieces are each tested on their own elsewhere; this shows they fit together in a
browser: the password form, the step-up offer of the MFA route, the enrolment during a
step-up, the recovery codes shown once, the verify page after a password.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page

from gateway.app import ENGINE
from gateway.store.factors import factors_of
from tests.browser.conftest import accessibility_problems
from tests.support.factors import mfa_rules, user_id
from tests.support.passwords import ALICE_PASSWORD, give_password, password_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser


async def shoot(page: Page, shots: Path, name: str) -> None:
    """The page at desktop and phone width, axe-core clean at both."""
    for width, label in ((1280, "desktop"), (390, "phone")):
        await page.set_viewport_size({"width": width, "height": 800})
        await page.screenshot(path=str(shots / f"journey-{name}-{label}.png"), full_page=True)
        assert await accessibility_problems(page) == [], f"{name} at {width}px"
    await page.set_viewport_size({"width": 1280, "height": 800})


async def password_sign_in(page: Page, base: str, target: str) -> None:
    await page.goto(f"{base}{target}")
    await page.get_by_label("Email", exact=True).fill("alice@acme.test")
    await page.get_by_label("Password", exact=True).fill(ALICE_PASSWORD)
    await page.get_by_role("button", name="Sign in with password").click()


def settings(smtp_port: int) -> dict[str, Any]:
    merged = password_settings(smtp_port)
    merged["auth"]["mfa"] = {"max_attempts": 5}
    return merged


async def test_password_then_an_mfa_page_then_password_and_code(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    _, smtp_port = smtp_server
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running_stack(
        tmp_path, port=port, rules_text=mfa_rules(route=True), **settings(smtp_port)
    ) as stack:
        await give_password(stack, "alice@acme.test")
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()

        # A password alone opens a page that does not ask for a second factor.
        await password_sign_in(page, base, "/api/invoices/7")
        await page.wait_for_url(f"{base}/api/invoices/7")
        assert json.loads(await page.locator("body").inner_text())["id"] == 7

        # The invoice list requires one: a signed-in person is offered to set one up.
        await page.goto(f"{base}/api/invoices")
        assert "/.gatehold/login?" in page.url and "mfa=1" in page.url
        await page.get_by_role("heading", name="Set up a second factor").wait_for()
        await shoot(page, shots, "mfa-offer")
        await page.get_by_role("button", name="Set up a second factor").click()
        await page.wait_for_url(f"{base}/.gatehold/login/enrol")
        await page.get_by_role("link", name="Set up an authenticator app").click()
        await page.get_by_role("heading", name="Set up an authenticator app").wait_for()
        await shoot(page, shots, "totp-setup")
        secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
        totp = pyotp.TOTP(secret)
        await page.get_by_label("Code from your authenticator app").fill(totp.now())
        await page.get_by_role("button", name="Turn on").click()
        await page.get_by_role("heading", name="Save your recovery codes").wait_for()
        codes = await page.get_by_role("list", name="Recovery codes").locator("code").all()
        assert len(codes) == 10
        await shoot(page, shots, "recovery-codes")
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"{base}/api/invoices")
        listed = json.loads(await page.locator("body").inner_text())
        assert listed and all(invoice["tenant"] == "acme" for invoice in listed["items"])

        engine = stack.app[ENGINE]
        factors = await factors_of(engine, await user_id(engine, "alice@acme.test"))
        assert factors.totp and factors.recovery_codes_left == 10
        await context.close()

        # From now on the password alone is not enough anywhere: the code is asked.
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await password_sign_in(page, base, "/api/invoices")
        await page.wait_for_url(f"{base}/.gatehold/login/verify")
        await page.get_by_role("heading", name="Confirm it is you").wait_for()
        await shoot(page, shots, "verify-after-password")
        # The set-up used this step's code: the next step's is the one an app shows next.
        await page.get_by_label("Code from your authenticator app").fill(totp.at(time.time() + 30))
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_url(f"{base}/api/invoices")
        assert json.loads(await page.locator("body").inner_text())["items"]
        cookies = {c["name"] for c in await context.cookies()}
        assert "__Host-gatehold" in cookies and "__Host-gatehold-pending" not in cookies
        await context.close()
