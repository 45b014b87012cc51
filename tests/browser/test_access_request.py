"""A refused person asks for access in real Chromium; once an admin approves, the next
request is allowed.

Rita (readonly in acme) signs in by email link, is refused a document download (403),
follows "Request access", fills the form and sends it. The superadmin approves through
the admin service; Rita gets the decision by mail (a real SMTP server), her old session
has ended, she signs in again, and the download she was refused now happens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from gateway.admin import access
from gateway.admin.service import CLI_ADMIN, AdminContext
from gateway.app import ENGINE
from gateway.auth.mailer import SmtpMailer
from gateway.config.settings import MailSettings
from gateway.context import GATEWAY
from gateway.store.access_requests import AccessRequestRow
from tests.browser.conftest import accessibility_problems
from tests.integration.test_magic_link import mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
RITA = "rita@acme.test"


async def sign_in(page: Page, inbox: Inbox, *, mail_number: int) -> None:
    await page.get_by_label("Email address").fill(RITA)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.get_by_role("heading", name="Check your inbox").wait_for()
    await page.goto(Inbox.link_in(await inbox.wait_for(RITA, count=mail_number)))
    await page.get_by_role("heading", name="Confirm sign-in").wait_for()


async def approve_the_request(stack: Stack, smtp_port: int) -> AccessRequestRow:
    mailer = SmtpMailer(MailSettings(mode="smtp", host="127.0.0.1", port=smtp_port))
    admin = AdminContext(
        stack.app[ENGINE],
        stack.app[GATEWAY].audit,
        CLI_ADMIN,
        frozenset(stack.ruleset.roles),
        mailer=mailer,
        end_sessions=stack.app[GATEWAY].sessions.revoke_user,
    )
    queue = await access.list_access_requests(admin)
    assert isinstance(queue, list) and len(queue) == 1
    approved = await access.approve_access_request(admin, queue[0].id)
    assert isinstance(approved, AccessRequestRow), approved
    return approved


async def test_denied_request_access_approved_then_allowed(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser, shots: Path
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mail_settings(smtp_port)) as stack:
        base = f"http://127.0.0.1:{port}"
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{base}/files/1")
        await sign_in(page, inbox, mail_number=1)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="You do not have access to this").wait_for()
        assert page.url == f"{base}/files/1"

        await page.get_by_role("link", name="Request access").click()
        await page.get_by_role("heading", name="Request access").wait_for()
        assert await page.get_by_label("Organisation").input_value() == "acme"
        assert await page.get_by_label("What you need access to").input_value() == "/files/1"
        await page.get_by_label("Role you need").select_option("standard")
        await page.get_by_label("Why you need it").fill("I take over the acme filing.")
        await page.screenshot(path=str(shots / "access-request-form.png"), full_page=True)
        assert await accessibility_problems(page) == []
        await page.get_by_role("button", name="Send request").click()
        await page.get_by_role("heading", name="Request sent").wait_for()
        await page.screenshot(path=str(shots / "access-request-sent.png"))
        assert await accessibility_problems(page) == []

        approved = await approve_the_request(stack, smtp_port)
        assert (approved.tenant, approved.granted_role) == ("acme", "standard")
        decision = await inbox.wait_for(RITA, count=2)
        assert decision["Subject"] == "Your access request for acme was approved"

        await page.goto(f"{base}/files/1")  # the grant ended the old session
        await page.get_by_role("heading", name="Sign in").wait_for()
        await sign_in(page, inbox, mail_number=3)
        async with page.expect_download() as download:
            await page.get_by_role("button", name="Sign in").click()
        fetched = await download.value
        assert Path(await fetched.path()).read_bytes() == b"Document 1 of acme\n"
        await context.close()

        [asked] = await stack.events("access-requested")
        [granted] = await stack.events("access-request-approved")
        assert asked["actor"] == RITA and granted["data"]["after"]["state"] == "approved"
