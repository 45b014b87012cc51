"""Single sign-on in real Chromium against a real OpenID Provider (npm oidc-provider)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import text

from gateway.app import ENGINE
from tests.browser.conftest import accessibility_problems
from tests.support.openid_provider import sign_in_at_provider
from tests.support.sso import sso
from tests.support.stack import DEMO_RULES

pytestmark = pytest.mark.browser


async def fill_provider_login(page: Page, login: str) -> None:
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill("any password")
    await page.locator("button[type=submit]").click()


async def test_sso_sign_in_applies_tenant_and_role_from_the_claims(
    tmp_path: Path, browser: Browser, shots: Path
) -> None:
    async with sso(tmp_path, label="Acme Corp SSO") as s:
        for width, name in ((1280, "desktop"), (390, "phone")):
            context = await browser.new_context(viewport={"width": width, "height": 800})
            page = await context.new_page()
            await page.goto(f"{s.base}/api/invoices/7")
            await page.get_by_role("link", name="Sign in with Acme Corp SSO").wait_for()
            await page.screenshot(path=str(shots / f"login-sso-{name}.png"), full_page=True)
            assert await accessibility_problems(page) == []
            await context.close()

        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{s.base}/api/invoices/7")
        await page.get_by_role("link", name="Sign in with Acme Corp SSO").click()
        await page.wait_for_url(f"{s.provider.issuer}/**")
        await page.screenshot(path=str(shots / "sso-provider-login.png"))
        await fill_provider_login(page, "cora")
        await page.wait_for_url(f"{s.base}/api/invoices/7")
        invoice = json.loads(await page.locator("body").inner_text())
        assert invoice["id"] == 7 and invoice["tenant"] == "acme"

        foreign = await page.goto(f"{s.base}/api/invoices/8")  # globex's invoice
        assert foreign is not None and foreign.status == 404
        hits = await s.stack.ledger_hits()
        assert hits.get(foreign.headers["x-request-id"], 0) == 0  # Ledger never saw it
        async with s.stack.app[ENGINE].connect() as conn:
            held = (
                await conn.execute(
                    text(
                        "SELECT m.tenant, m.role FROM memberships m JOIN users u"
                        " ON u.id = m.user_id WHERE u.email = 'cora@acme.test'"
                    )
                )
            ).all()
        assert [tuple(row) for row in held] == [("acme", "standard")]
        await context.close()


async def test_a_callback_opened_in_another_browser_is_refused(
    tmp_path: Path, browser: Browser, shots: Path
) -> None:
    async with sso(tmp_path, label="Acme Corp SSO") as s:
        victim = await browser.new_context()
        page = await victim.new_page()
        # The victim's browser starts the login (its cookie jar gets the flow cookie) ...
        started = await victim.request.get(
            f"{s.base}/.gatehold/oidc/corp/start?rd=/api/invoices/7", max_redirects=0
        )
        assert started.status == 303
        assert "__Host-gatehold-oidc" in {c["name"] for c in await victim.cookies()}
        # ... signs in at the provider, and the callback URL leaks before it is opened.
        captured = [
            await sign_in_at_provider(started.headers["location"], "cora", until=s.callback())
        ]

        attacker = await browser.new_context()
        other = await attacker.new_page()
        refused = await other.goto(captured[0])
        assert refused is not None and refused.status == 400
        await other.get_by_text("started in another browser").wait_for()
        await other.screenshot(path=str(shots / "sso-other-browser-refused.png"))
        assert await accessibility_problems(other) == []
        assert "__Host-gatehold" not in {c["name"] for c in await attacker.cookies()}

        await page.goto(captured[0])  # the browser that started the login may finish it
        await page.wait_for_url(f"{s.base}/api/invoices/7")
        failures = await s.stack.events("login-failed")
        assert [(f["method"], f["reason"]) for f in failures] == [("oidc", "login-expired")]
        await victim.close()
        await attacker.close()


async def test_step_up_makes_the_provider_authenticate_again(
    tmp_path: Path, browser: Browser, shots: Path
) -> None:
    # The demo's export needs a sign-in from the last 10 minutes; here, the last 4 seconds.
    rules = DEMO_RULES.read_text().replace("step_up: 10m", "step_up: 4s")
    async with sso(tmp_path, rules_text=rules, label="Acme Corp SSO") as s:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{s.base}/.gatehold/login?rd=/api/invoices")
        await page.get_by_role("link", name="Sign in with Acme Corp SSO").click()
        await fill_provider_login(page, "adam")
        await page.wait_for_url(f"{s.base}/api/invoices")

        await asyncio.sleep(4.5)  # the sign-in grows older than the route allows

        export = "fetch('/api/invoices/export', {method: 'POST'}).then(r => r.status)"
        assert await page.evaluate(export) == 401

        await page.goto(f"{s.base}/.gatehold/login?rd=/api/invoices&step_up=1")
        await page.get_by_text("needs a recent sign-in").wait_for()
        await page.screenshot(path=str(shots / "sso-step-up.png"))
        await page.get_by_role("link", name="Sign in with Acme Corp SSO").click()
        # prompt=login: the provider asks again although its own session is still alive.
        await page.locator("input[name=login]").wait_for()
        await fill_provider_login(page, "adam")
        await page.wait_for_url(f"{s.base}/api/invoices")
        assert await page.evaluate(export) == 200
        logins = await s.stack.events("login")
        assert [(e["actor"], e["method"]) for e in logins] == [("adam@acme.test", "oidc")] * 2
        await context.close()
