"""Who sees and decides which access requests, in real Chromium, and forms tampered with.

Carol (admin of acme only) sees acme's queue and nothing of globex's; a form whose
address is edited to a globex request id is answered "not found" and changes nothing;
a form sent without its CSRF token gets the gateway's 403 page. The superadmin sees
every tenant's requests, filters them by tenant and stays in the filter after deciding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.admin import access
from gateway.admin.service import Admin, AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.store import access_requests as request_store
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
ALICE = "alice@acme.test"
BOB = "bob@globex.test"
RETARGET = "(form, id) => { form.action = form.action.replace(/\\d+\\/approve/, `${id}/approve`) }"
"""Point an approve form at another request id (as anyone can with the browser's tools)."""


async def ask(stack: Stack, email: str, tenant: str) -> AccessRequestRow:
    """``email`` asks for standard in ``tenant`` (as the request-access form does)."""
    engine = stack.app[ENGINE]
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    ctx = AdminContext.over(engine, stack.app[GATEWAY].audit, Admin(email), stack.ruleset.roles)
    row = await access.request_access(
        ctx, user_id=user.id, tenant=tenant, what="/api/invoices", why="Month end.", role=None
    )
    assert isinstance(row, AccessRequestRow), row
    return row


async def still_pending(stack: Stack, request_id: int) -> bool:
    row = await request_store.get_request(stack.app[ENGINE], request_id)
    return row is not None and row.state == "pending"


async def test_carol_sees_only_acme_and_tampered_forms_change_nothing(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        bobs = await ask(stack, BOB, "acme")
        alices = await ask(stack, ALICE, "globex")
        queue = base_url(stack) + UI + "/access-requests"

        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(queue)
            articles = page.get_by_role("article")
            assert [await a.get_by_role("heading").inner_text() for a in await articles.all()] == [
                f"{BOB} asks for access to acme"
            ]
            assert await page.get_by_label("Organisation").count() == 0  # one tenant: no filter

            # The approve form's address edited to the globex request's id.
            form = articles.first.locator("form").first
            await form.evaluate(RETARGET, alices.id)
            await articles.first.get_by_label("Role to grant").select_option("standard")
            async with page.expect_navigation() as sent:
                await articles.first.get_by_role("button", name="Approve").click()
            answer = await sent.value
            assert answer is not None and answer.status == 404
            assert f"no access request {alices.id}" in await page.get_by_role("alert").inner_text()
            assert await capture(page, "access-requests-not-yours") == []
            assert await still_pending(stack, alices.id)

            # The same form without its CSRF token.
            await page.goto(queue)
            await page.locator("input[name=csrf]").evaluate_all("es => es.forEach(e => e.remove())")
            async with page.expect_navigation() as sent:
                await page.get_by_role("button", name="Decline").click()
            answer = await sent.value
            assert answer is not None and answer.status == 403
            await page.get_by_role("heading", name="You do not have access to this").wait_for()
            assert await still_pending(stack, bobs.id)

            answer = await page.goto(base_url(stack) + UI + "/reviews/globex")
            assert answer is not None and answer.status == 403

        denied = [e for e in await stack.events("admin-ui") if e["decision"] == "deny"]
        assert [(e["actor"], e["reason"], e["data"]["status"]) for e in denied] == [
            (CAROL, "refused-404", 404),
            (CAROL, "csrf-failed", 403),
            (CAROL, "refused-403", 403),
        ]
        assert await stack.events("access-request-approved") == []
        assert await stack.events("access-request-declined") == []

        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(queue)
            assert await page.get_by_role("article").count() == 2
            await page.get_by_label("Organisation").select_option("globex")
            await page.get_by_role("button", name="Show").click()
            await page.wait_for_url("**/access-requests?tenant=globex")
            headings = page.get_by_role("article").get_by_role("heading")
            assert await headings.all_inner_texts() == [f"{ALICE} asks for access to globex"]
            assert await capture(page, "access-requests-superadmin-filtered") == []
            await page.get_by_role("button", name="Decline").click()
            await page.get_by_role("status").filter(has_text="Declined alice").wait_for()
            assert page.url.startswith(queue + "?tenant=globex&")  # the filter stays
            assert await page.get_by_role("article").count() == 0
