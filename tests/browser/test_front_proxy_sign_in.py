"""Sign-in through real front proxies: Chromium asks nginx, then Caddy (each run with
the config ``gatehold export`` writes) for a forward-auth page, is sent to Gatehold's
sign-in, signs in with a magic link and lands on the page, which the front proxy then
serves after asking ``/.gatehold/auth``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Browser
from sqlalchemy import text

from gateway.app import ENGINE
from tests.integration.test_magic_link import mail_settings
from tests.support.front_proxy import KINDS, forward_auth_stack
from tests.support.smtp import Inbox

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("kind", KINDS)
async def test_sign_in_by_email_link_through_the_front_proxy(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path, kind: str
) -> None:
    inbox, smtp_port = smtp_server
    async with forward_auth_stack(tmp_path, [kind], **mail_settings(smtp_port)) as fa:
        base = fa.proxies[kind].url
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{base}/api/invoices/7")
        assert page.url.startswith(f"{base}/.gatehold/login?rd=/api/invoices/7"), page.url
        await page.get_by_label("Email address").fill("alice@acme.test")
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your inbox").wait_for()

        link = Inbox.link_in(await inbox.wait_for("alice@acme.test"))
        assert link.startswith(base), link
        await page.goto(link)
        await page.get_by_role("heading", name="Confirm sign-in").wait_for()
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}/api/invoices/7")
        invoice = json.loads(await page.locator("body").inner_text())
        assert invoice["id"] == 7 and invoice["tenant"] == "acme"
        await page.screenshot(path=str(shots / f"front-proxy-{kind}-signed-in.png"))

        foreign = await page.goto(f"{base}/api/invoices/8")
        assert foreign is not None and foreign.status == 404
        await context.close()

        await fa.stack.settled()
        async with fa.stack.app[ENGINE].connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT actor, decision, data FROM audit_log "
                        "WHERE kind = 'request' AND path = '/api/invoices/7' ORDER BY seq"
                    )
                )
            ).all()
    decided = [(row.decision, json.loads(row.data).get("via")) for row in rows]
    assert decided[0] == ("deny", "forward-auth"), decided  # before sign-in: the 401
    assert decided[-1] == ("allow", "forward-auth"), decided  # after: decided at the endpoint
