"""An access request from refusal to access, decided in the admin UI, in real Chromium.

Rita (readonly in acme) signs in by a mailed link, is refused a download and asks for
the admin role through the "Request access" form. Carol (admin of acme only) opens the
queue, grants standard instead, by keyboard alone; Rita is mailed, her session has
ended, she signs in again and the refused download happens. Bob then asks for access to
acme and Carol declines with a reason: Bob is mailed the reason. A decision someone
else made meanwhile is refused on the page, not done twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from gateway.admin import access
from gateway.admin.service import Admin, AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.browser.admin_ui import (
    ADMIN,
    CAROL,
    UI,
    admin_page,
    base_url,
    capture,
    signed_in_context,
)
from tests.browser.test_access_request import RITA, sign_in
from tests.integration.test_magic_link import mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
BOB = "bob@globex.test"
ALICE = "alice@acme.test"
DOCUMENT = b"Document 1 of acme\n"


async def ask_in_the_form(page: Page, *, tenant: str, role: str, why: str) -> None:
    """The request-access form, as its owner fills it in (tenant and address prefilled
    when it was opened from a refusal)."""
    await page.get_by_role("heading", name="Request access").wait_for()
    await page.get_by_label("Organisation").fill(tenant)
    await page.get_by_label("Role you need").select_option(role)
    await page.get_by_label("Why you need it").fill(why)
    await page.get_by_role("button", name="Send request").click()
    await page.get_by_role("heading", name="Request sent").wait_for()


async def rita_asks_for_admin(page: Page, stack: Stack, inbox: Inbox) -> None:
    await page.goto(base_url(stack) + "/files/1")
    await sign_in(page, inbox, mail_number=1)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="You do not have access to this").wait_for()
    await page.get_by_role("link", name="Request access").click()
    assert await page.get_by_label("What you need access to").input_value() == "/files/1"
    await ask_in_the_form(page, tenant="acme", role="admin", why="I take over the filing.")


async def bob_asks_for_acme(browser: Browser, stack: Stack) -> None:
    context = await signed_in_context(browser, stack, BOB)
    page = await context.new_page()
    await page.goto(base_url(stack) + "/.gatehold/access/request?tenant=acme&what=/api/invoices")
    await ask_in_the_form(page, tenant="acme", role="", why="I audit acme's invoices.")
    await context.close()


def context_of(stack: Stack, email: str, *, superadmin: bool = False) -> AdminContext:
    """The admin service acting as ``email`` (what a form or another admin's page does)."""
    gw = stack.app[GATEWAY]
    actor = Admin(email, superadmin=superadmin)
    return AdminContext.over(stack.app[ENGINE], gw.audit, actor, stack.ruleset.roles)


async def alice_asks(stack: Stack) -> AccessRequestRow:
    """Alice asks for admin in acme (as the request-access form does)."""
    alice = await user_store.get_user_by_email(stack.app[ENGINE], ALICE)
    assert alice is not None
    asked = await access.request_access(
        context_of(stack, ALICE),
        user_id=alice.id,
        tenant="acme",
        what="/api/invoices",
        why="Cover for Carol.",
        role="admin",
    )
    assert isinstance(asked, AccessRequestRow), asked
    return asked


async def test_rita_asks_carol_approves_by_keyboard_bob_is_declined(
    tmp_path: Path, smtp_server: tuple[Inbox, int], browser: Browser
) -> None:
    inbox, smtp_port = smtp_server
    async with running_stack(tmp_path, port=free_port(), **mail_settings(smtp_port)) as stack:
        rita = await browser.new_context(viewport={"width": 1280, "height": 800})
        rita_page = await rita.new_page()
        await rita_asks_for_admin(rita_page, stack, inbox)

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/access-requests")
            request = page.get_by_role("article", name=f"{RITA} asks for access to acme")
            role = request.get_by_label("Role to grant")
            assert await role.input_value() == "admin"  # as asked
            assert "/files/1" in await request.inner_text()
            assert await capture(page, "access-requests-queue") == []

            await role.focus()
            await page.keyboard.type("st")  # a closed select picks by typed letters
            assert await role.input_value() == "standard"
            await page.keyboard.press("Tab")
            approve = request.get_by_role("button", name="Approve")
            assert await approve.evaluate("e => e === document.activeElement")
            await page.keyboard.press("Enter")
            notice = page.get_by_role("status")
            await notice.wait_for()
            assert "Approved: rita@acme.test now holds standard in acme" in (
                await notice.inner_text()
            )
            mail = await inbox.wait_for(RITA, count=2)
            assert mail["Subject"] == "Your access request for acme was approved"

            await rita_page.goto(base_url(stack) + "/files/1")  # her session has ended
            await rita_page.get_by_role("heading", name="Sign in").wait_for()
            await sign_in(rita_page, inbox, mail_number=3)
            async with rita_page.expect_download() as download:
                await rita_page.get_by_role("button", name="Sign in").click()
            fetched = await download.value
            assert Path(await fetched.path()).read_bytes() == DOCUMENT
            await rita.close()

            await bob_asks_for_acme(browser, stack)
            alices = await alice_asks(stack)
            await page.goto(base_url(stack) + UI + "/access-requests")
            late = page.get_by_role("article", name=f"{ALICE} asks for access to acme")
            await late.wait_for()
            # The superadmin declines it while Carol's queue still shows it.
            superadmin = context_of(stack, ADMIN, superadmin=True)
            declined = await access.decline_access_request(superadmin, alices.id)
            assert isinstance(declined, AccessRequestRow), declined
            await late.get_by_role("button", name="Approve").click()
            problem = page.get_by_role("alert")
            assert "was declined already by admin@example.test" in await problem.inner_text()
            assert await capture(page, "access-requests-refused") == []

            bobs = page.get_by_role("article", name=f"{BOB} asks for access to acme")
            assert await bobs.get_by_label("Role to grant").input_value() == ""
            reason = "Ask your manager to sponsor it."
            await bobs.get_by_label("Reason for declining").fill(reason)
            await bobs.get_by_role("button", name="Decline").click()
            await page.get_by_role("status").wait_for()
            assert (
                "Declined bob@globex.test's request for acme."
                in await page.get_by_role("status").inner_text()
            )
            decided = page.get_by_role("region", name="Decided")
            assert "approved as standard" in await decided.inner_text()
            assert reason in await decided.inner_text()
            assert await page.get_by_text("No request is waiting.").count() == 1
            assert await capture(page, "access-requests-decided") == []

        mail = await inbox.wait_for(BOB)
        assert mail["Subject"] == "Your access request for acme was declined"
        assert reason in str(mail.get_payload(decode=True), "utf-8")
        [approved] = await stack.events("access-request-approved")
        assert approved["actor"] == CAROL
        assert approved["data"]["before"]["state"] == "pending"
        assert approved["data"]["after"]["granted_role"] == "standard"
        assert [e["actor"] for e in await stack.events("access-request-declined")] == [
            ADMIN,
            CAROL,
        ]
