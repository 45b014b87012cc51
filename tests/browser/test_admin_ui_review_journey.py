"""An access review of acme in real Chromium, from idle accounts to the audit.

Rita has not been seen for 200 days (her sessions' last activity is set back in the
store) and Dave was added but never signed in: the review flags both as idle. Carol
(admin of acme) revokes Rita from the review, her session ends at once, and Carol marks
the tenant reviewed by keyboard: the attestation is listed on the page and audited. The
superadmin picks a tenant to review; a bad idle-days value is answered on the page.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import Browser
from sqlalchemy import update

from gateway.admin import service
from gateway.admin.service import CLI_ADMIN, AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.model import Membership
from gateway.store import tables
from gateway.store import users as user_store
from gateway.store.users import UserRow
from tests.browser.admin_ui import ADMIN, CAROL, UI, admin_page, base_url, capture
from tests.support.servers_base import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser
RITA = "rita@acme.test"
DAVE = "dave@acme.test"
DAY = 86400.0


async def make_idle(stack: Stack) -> None:
    """Rita's sessions were last used 200 days ago; Dave joins acme and never signs in."""
    engine = stack.app[ENGINE]
    rita = await user_store.get_user_by_email(engine, RITA)
    assert rita is not None
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.sessions)
            .where(tables.sessions.c.user_id == rita.id)
            .values(last_seen=time.time() - 200 * DAY)
        )
    ctx = AdminContext.over(engine, stack.app[GATEWAY].audit, CLI_ADMIN, stack.ruleset.roles)
    added = await service.add_user(ctx, DAVE, [Membership("acme", "standard")])
    assert isinstance(added, UserRow), added


async def test_idle_member_is_flagged_revoked_and_the_review_attested(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_stack(tmp_path, port=free_port()) as stack:
        await make_idle(stack)
        async with admin_page(browser, stack, CAROL) as page:
            await page.goto(base_url(stack) + UI + "/reviews")  # one tenant: straight to it
            assert page.url == base_url(stack) + UI + "/reviews/acme"
            await page.get_by_role("heading", name="Access review: acme").wait_for()
            members = page.get_by_role("region", name="Members")
            rita = members.get_by_role("row").filter(has_text=RITA)
            dave = members.get_by_role("row").filter(has_text=DAVE)
            alice = members.get_by_role("row").filter(has_text="alice@acme.test")
            assert "idle" in await rita.inner_text()
            assert "never" in await dave.inner_text() and "idle" in await dave.inner_text()
            assert "active" in await alice.inner_text()
            assert "(5, 2 idle)" in await page.get_by_role("heading", name="Members").inner_text()
            assert await capture(page, "review-idle-flagged") == []

            await rita.get_by_role("button", name="Revoke").click()
            notice = page.get_by_role("status")
            await notice.wait_for()
            assert f"Revoked every role of {RITA} in acme" in await notice.inner_text()
            assert await members.get_by_role("row").filter(has_text=RITA).count() == 0

            comment = page.get_by_label("Comment (optional)")
            await comment.fill("Q4 review: one leaver removed, Dave starts Monday.")
            await comment.focus()
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")  # "Mark reviewed", by keyboard
            await page.get_by_role("status").filter(has_text="Marked reviewed: acme").wait_for()
            past = page.get_by_role("region", name="Past reviews")
            assert CAROL in await past.inner_text()
            assert "one leaver removed" in await past.inner_text()
            assert await capture(page, "review-attested") == []

            answer = await page.goto(base_url(stack) + UI + "/reviews/acme?idle_days=0")
            assert answer is not None and answer.status == 422
            assert "from 1 to 3650" in await page.get_by_role("alert").inner_text()
            assert await page.get_by_label("Flag as idle after (days)").input_value() == "0"
            assert await capture(page, "review-bad-idle-days") == []

        gone = await user_store.get_user_by_email(stack.app[ENGINE], RITA)
        assert gone is not None and gone.memberships == ()
        refused = await stack.client.get("/api/invoices/7", headers=stack.cookie(RITA))
        assert refused.status in (302, 303, 401), refused.status  # her session ended
        [revoked] = await stack.events("member-revoked")
        assert revoked["actor"] == CAROL and revoked["data"]["via"] == "access-review"
        assert revoked["data"]["before"]["memberships"] == ["readonly@acme"]
        assert revoked["data"]["after"]["memberships"] == []
        [attested] = await stack.events("access-review-attested")
        assert (attested["actor"], attested["tenant"]) == (CAROL, "acme")
        assert attested["data"]["comment"].startswith("Q4 review")
        assert attested["data"]["members"] == 4 and attested["data"]["before"] is None

        async with admin_page(browser, stack, ADMIN) as page:
            await page.goto(base_url(stack) + UI + "/reviews")
            await page.get_by_role("heading", name="Access reviews").wait_for()
            assert await capture(page, "review-pick-tenant") == []
            await page.get_by_label("Organisation").select_option("globex")
            await page.get_by_role("button", name="Review").click()
            await page.get_by_role("heading", name="Access review: globex").wait_for()
            assert (
                "bob@globex.test" in await page.get_by_role("region", name="Members").inner_text()
            )
