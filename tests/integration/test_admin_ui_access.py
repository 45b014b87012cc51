"""The admin UI's access requests and reviews over HTTP: who sees and decides what, CSRF,
and bad input answered on the page (never a 500), each attack checked in the store and
in the ``admin-ui`` audit row."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from gateway.admin import access
from gateway.admin.service import Admin, AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.store import access_requests as request_store
from gateway.store import access_reviews as review_store
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
ADMIN = "admin@example.test"
CAROL = "carol@acme.test"
ALICE = "alice@acme.test"
BOB = "bob@globex.test"
RITA = "rita@acme.test"
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
"""The session's token, as every page hands it to htmx (forms carry the same)."""


async def ask(stack: Stack, email: str, tenant: str, role: str | None) -> AccessRequestRow:
    """``email`` asks for ``role`` in ``tenant`` through the service (as the form does)."""
    engine = stack.app[ENGINE]
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    ctx = AdminContext.over(engine, stack.app[GATEWAY].audit, Admin(email), stack.ruleset.roles)
    row = await access.request_access(
        ctx, user_id=user.id, tenant=tenant, what="/files/1", why="Needed for the audit.", role=role
    )
    assert isinstance(row, AccessRequestRow), row
    return row


async def page(stack: Stack, email: str, path: str) -> tuple[int, str]:
    response = await stack.client.get(UI + path, headers=stack.cookie(email), allow_redirects=False)
    return response.status, await response.text()


async def csrf_of(stack: Stack, email: str) -> str:
    status, body = await page(stack, email, "/access-requests")
    assert status == 200, body
    found = CSRF.search(body)
    assert found, body
    return unescape(found.group(1))


async def post(
    stack: Stack, email: str, path: str, form: dict[str, str], *, csrf: bool = True
) -> tuple[int, str]:
    data = dict(form)
    if csrf:
        data["csrf"] = await csrf_of(stack, email)
    response = await stack.client.post(
        UI + path, data=data, headers=stack.cookie(email), allow_redirects=False
    )
    return response.status, await response.text()


async def state_of(stack: Stack, request_id: int) -> str:
    row = await request_store.get_request(stack.app[ENGINE], request_id)
    assert row is not None
    return row.state


async def last_ui_row(stack: Stack, path: str) -> dict[str, object]:
    rows = [row for row in await stack.events("admin-ui") if row["path"] == UI + path]
    assert rows, path
    return rows[-1]


async def test_a_tenant_admin_sees_and_decides_only_their_tenants_requests(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        into_acme = await ask(stack, BOB, "acme", "readonly")
        into_globex = await ask(stack, ALICE, "globex", "standard")

        status, body = await page(stack, CAROL, "/access-requests")
        assert status == 200
        assert f"{BOB} asks for access to acme" in body and ALICE not in body
        status, body = await page(stack, ADMIN, "/access-requests")
        assert status == 200 and f"{ALICE} asks for access to globex" in body

        for path, form in (
            (f"/access-requests/{into_globex.id}/approve", {"role": "standard"}),
            (f"/access-requests/{into_globex.id}/decline", {"comment": "no"}),
            ("/access-requests/999999/approve", {"role": "standard"}),
        ):
            status, body = await post(stack, CAROL, path, form)
            assert status == 404, (path, body)
            assert "no access request" in body
            row = await last_ui_row(stack, path)
            assert (row["actor"], row["decision"]) == (CAROL, "deny")
        assert await state_of(stack, into_globex.id) == "pending"
        assert await stack.events("access-request-approved") == []
        assert await stack.events("access-request-declined") == []

        status, _ = await page(stack, CAROL, "/access-requests?tenant=globex")
        assert status == 403
        status, _ = await page(stack, CAROL, "/access-requests/1/approve")
        assert status in (404, 405)
        status, _ = await page(stack, CAROL, "/access-requests/99999999999999999999999/approve")
        assert status in (404, 405)

        status, _ = await post(stack, CAROL, f"/access-requests/{into_acme.id}/approve", {})
        assert status == 303
        assert await state_of(stack, into_acme.id) == "approved"


async def test_approve_without_the_csrf_token_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        asked = await ask(stack, RITA, "acme", "standard")
        path = f"/access-requests/{asked.id}/approve"
        for form in ({"role": "admin"}, {"role": "admin", "csrf": "forged"}):
            status, body = await post(stack, CAROL, path, form, csrf=False)
            assert status == 403, body
            row = await last_ui_row(stack, path)
            assert row["decision"] == "deny" and row["reason"] == "csrf-failed"
        assert await state_of(stack, asked.id) == "pending"
        rita = await user_store.get_user_by_email(stack.app[ENGINE], RITA)
        assert rita is not None and [m.role for m in rita.memberships] == ["readonly"]
        assert await stack.events("access-request-approved") == []

        revoke = "/reviews/acme/revoke"
        status, _ = await post(stack, CAROL, revoke, {"email": RITA}, csrf=False)
        assert status == 403
        rita = await user_store.get_user_by_email(stack.app[ENGINE], RITA)
        assert rita is not None and rita.memberships


async def test_bad_input_is_answered_on_the_page_with_what_was_typed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        asked = await ask(stack, RITA, "acme", "standard")
        long_reason = "Not now, " + "x" * 2100
        status, body = await post(
            stack, CAROL, f"/access-requests/{asked.id}/decline", {"comment": long_reason}
        )
        assert status == 422 and "at most 2000 characters" in body
        assert long_reason in body  # the textarea keeps it
        status, body = await post(
            stack, CAROL, f"/access-requests/{asked.id}/approve", {"role": "operator"}
        )
        assert status == 403 and "only a superadmin grants it" in unescape(body), body
        status, body = await post(
            stack, CAROL, f"/access-requests/{asked.id}/approve", {"role": "no-such-role"}
        )
        assert status == 422 and "unknown role" in unescape(body)
        assert await state_of(stack, asked.id) == "pending"

        status, _ = await post(stack, CAROL, f"/access-requests/{asked.id}/decline", {})
        assert status == 303
        status, body = await post(
            stack, CAROL, f"/access-requests/{asked.id}/approve", {"role": "standard"}
        )
        assert status == 422 and "was declined already" in body
        assert await state_of(stack, asked.id) == "declined"

        for days in ("abc", "0", "99999999"):
            status, body = await page(stack, CAROL, f"/reviews/acme?idle_days={days}")
            assert status == 422 and "give a number of days from 1 to 3650" in body
            assert f'value="{days}"' in body
        status, body = await post(stack, CAROL, "/reviews/acme/attest", {"comment": "a\x00b"})
        assert status == 422 and "control characters" in body
        assert await review_store.list_attestations(stack.app[ENGINE], "acme") == []
        status, body = await post(stack, CAROL, "/reviews/acme/revoke", {"email": BOB})
        assert status == 404 and "no member" in body


async def test_a_tenant_admin_reviews_only_their_tenants(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, _ = await page(stack, CAROL, "/reviews")
        assert status == 303  # one tenant: straight to it
        status, body = await page(stack, CAROL, "/reviews/acme")
        assert status == 200 and RITA in body and BOB not in body
        for tenant in ("globex", "nosuch", "*"):
            status, _ = await page(stack, CAROL, f"/reviews/{tenant}")
            assert status == 403, tenant
            status, _ = await page(stack, CAROL, f"/reviews/{tenant}/export.csv")
            assert status == 403, tenant
        for path, form in (
            ("/reviews/globex/revoke", {"email": BOB}),
            ("/reviews/globex/attest", {"comment": "looked at it"}),
        ):
            status, _ = await post(stack, CAROL, path, form)
            assert status == 403
            row = await last_ui_row(stack, path)
            assert row["decision"] == "deny"
        bob = await user_store.get_user_by_email(stack.app[ENGINE], BOB)
        assert bob is not None and [m.tenant for m in bob.memberships] == ["globex"]
        assert await review_store.list_attestations(stack.app[ENGINE], "globex") == []
        assert await stack.events("member-revoked") == []

        status, body = await page(stack, ADMIN, "/reviews")
        assert status == 200 and "Global grants" in body
        status, body = await page(stack, ADMIN, "/reviews/globex")
        assert status == 200 and BOB in body
        response = await stack.client.get(
            UI + "/reviews/acme/export.csv", headers=stack.cookie(CAROL)
        )
        assert response.status == 200 and response.content_type == "text/csv"
        assert RITA in await response.text()
        assert len(await stack.events("access-review-exported")) == 1
