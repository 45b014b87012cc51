"""The invite journey in real Chromium, with a real SMTP server.

The superadmin invites Dana to acme as ``readonly`` on the Users pages; the mail arrives;
Dana opens its link in her own browser and signs in; a document download (``download``
is not a readonly action) is refused. The admin changes her role to ``standard`` on her
page, which ends her sessions; in the same browser Dana signs in again and the download
she was refused now happens, and Ledger served it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.admin_ui import ADMIN, UI, admin_page, base_url, capture
from tests.integration.test_magic_link import mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
DANA = "dana@acme.test"


async def invite_dana(page: Page, stack: Stack) -> None:
    await page.goto(base_url(stack) + UI + "/users")
    await page.get_by_role("link", name="Invite someone").click()
    await page.get_by_role("heading", name="Invite someone").wait_for()
    await page.get_by_label("Email address").fill(DANA)
    await page.get_by_label("Name").fill("Dana Scully")
    await page.get_by_label("Tenant").select_option("acme")
    await page.get_by_label("Role").select_option("readonly")
    await page.get_by_role("button", name="Send the invite").click()
    await page.get_by_role("heading", name="Dana Scully", level=1).wait_for()
    assert "a sign-in link is on its way" in await page.get_by_role("status").inner_text()
    assert await page.locator("dd .tag", has_text="invited").count() == 1


async def make_dana_standard(page: Page, stack: Stack) -> None:
    await page.goto(base_url(stack) + UI + "/users?q=dana")
    await page.get_by_role("link", name=DANA).click()
    await page.get_by_label("New role in acme").select_option("standard")
    await page.get_by_role("button", name="Change role").click()
    assert "is now standard" in await page.get_by_role("status").inner_text()
    row = page.get_by_role("region", name="Memberships").get_by_role("row").nth(1)
    assert (await row.get_by_role("cell").nth(1).inner_text()) == "standard"


async def test_invited_by_mail_refused_as_readonly_then_allowed_as_standard(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser
) -> None:
    inbox, smtp_port = smtp_server
    port = free_port()
    async with running_stack(tmp_path, port=port, **mail_settings(smtp_port)) as stack:
        base = base_url(stack)
        async with admin_page(browser, stack, ADMIN) as admin:
            await invite_dana(admin, stack)
            invitation = await inbox.wait_for(DANA)
            assert "acme" in str(invitation.get_payload(decode=True))

            dana_context = await browser.new_context(viewport={"width": 1280, "height": 800})
            dana = await dana_context.new_page()
            await dana.goto(Inbox.link_in(invitation))
            await dana.get_by_role("heading", name="Confirm sign-in").wait_for()
            await dana.get_by_role("button", name="Sign in").click()
            await dana.wait_for_load_state()
            reached = await stack.ledger_total()
            refused = await dana.goto(f"{base}/files/1")
            assert refused is not None and refused.status == 403
            await dana.get_by_role("heading", name="You do not have access to this").wait_for()
            assert await stack.ledger_total() == reached, "the refused download reached Ledger"

            await admin.goto(f"{base}{UI}/users?q=dana")
            assert await admin.get_by_role("cell", name="active", exact=True).count() == 1
            await make_dana_standard(admin, stack)
            assert await capture(admin, "person-after-role-change") == []

            # The role change ended Dana's session: she signs in again, in the same browser.
            await dana.goto(f"{base}/files/1")
            await dana.get_by_role("heading", name="Sign in").wait_for()
            await dana.get_by_label("Email address").fill(DANA)
            await dana.get_by_role("button", name="Email me a sign-in link").click()
            await dana.get_by_role("heading", name="Check your inbox").wait_for()
            await dana.goto(Inbox.link_in(await inbox.wait_for(DANA, count=2)))
            async with dana.expect_download() as download:
                await dana.get_by_role("button", name="Sign in").click()
            fetched = await download.value
            assert Path(await fetched.path()).read_bytes() == b"Document 1 of acme\n"
            assert await stack.ledger_total() == reached + 1
            await dana_context.close()

        [invited] = await stack.events("user-invited")
        assert invited["actor"] == ADMIN and invited["data"]["grants"] == ["readonly@acme"]
        assert invited["data"]["after"]["display_name"] == "Dana Scully"
        [changed] = await stack.events("role-changed")
        assert changed["data"]["before"]["memberships"] == ["readonly@acme"]
        assert changed["data"]["after"]["memberships"] == ["standard@acme"]
        assert [e["data"]["why"] for e in await stack.events("session-revoked")] == ["role-changed"]
