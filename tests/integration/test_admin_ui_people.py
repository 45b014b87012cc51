"""The Users and Tenants pages of the admin UI, over HTTP: who sees whom, ids changed in
addresses, forged and refused changes, and bad input shown with what was typed kept."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import ClientResponse

from gateway.app import ENGINE
from gateway.store import users as user_store
from tests.support.admin_api import store_snapshot
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
SUPER = "admin@example.test"
CAROL = "carol@acme.test"
BOB = "bob@globex.test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def page(stack: Stack, email: str, path: str) -> tuple[int, str]:
    async with stack.client.get(UI + path, headers=stack.cookie(email)) as answer:
        return answer.status, await answer.text()


async def csrf_of(stack: Stack, email: str) -> str:
    _, html = await page(stack, email, "/users/invite")
    found = CSRF.search(html)
    assert found is not None, "every admin page carries the session's CSRF token"
    return found.group(1)


async def post(
    stack: Stack, email: str, path: str, form: dict[str, str], *, csrf: str | None
) -> ClientResponse:
    fields = form if csrf is None else {**form, "csrf": csrf}
    return await stack.client.post(
        UI + path, data=fields, headers=stack.cookie(email), allow_redirects=False
    )


async def ui_rows(stack: Stack, path: str) -> list[tuple[str, str, str]]:
    return [
        (row["actor"], row["decision"], row["reason"])
        for row in await stack.events("admin-ui")
        if row["path"] == UI + path
    ]


async def test_a_tenant_admin_sees_only_their_tenants_people_and_tenants(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, users = await page(stack, CAROL, "/users")
        assert status == 200
        assert "alice@acme.test" in users and "rita@acme.test" in users
        assert BOB not in users and "globex" not in users
        assert BOB not in (await page(stack, CAROL, "/users?q=globex"))[1]
        status, tenants = await page(stack, CAROL, "/tenants")
        assert status == 200 and "/tenants/acme" in tenants and "/tenants/globex" not in tenants
        assert "Create a tenant" not in tenants

        for path in ("/users/bob@globex.test", "/users/bob@GLOBEX.test", "/tenants/globex"):
            status, html = await page(stack, CAROL, path)
            assert status == 404, path
            assert "no user" in html or "no tenant" in html
            assert "standard" not in html, "nothing about the person shows"
        status, html = await page(stack, SUPER, "/users/bob@globex.test")
        assert status == 200 and "Change role" in html


async def test_a_tenant_admin_cannot_change_another_tenants_person(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await csrf_of(stack, CAROL)
        before = await store_snapshot(stack)
        attempts = {
            "/users/bob@globex.test/deactivate": ({}, 404),
            "/users/bob@globex.test/sessions/end": ({}, 404),
            "/users/bob@globex.test/memberships": ({"tenant": "acme", "role": "readonly"}, 404),
            "/users/alice@acme.test/memberships": ({"tenant": "globex", "role": "admin"}, 422),
            "/users/alice@acme.test/memberships/role": (
                {"tenant": "acme", "role": "operator"},
                422,
            ),
            "/users/admin@example.test/deactivate": ({}, 403),
            "/tenants": ({"id": "initech", "name": "Initech"}, 403),
            "/tenants/globex/deactivate": ({}, 404),
            "/tenants/acme/deactivate": ({}, 403),
        }
        for path, (form, status) in attempts.items():
            async with await post(stack, CAROL, path, form, csrf=token) as answer:
                assert answer.status == status, (path, await answer.text())
                html = await answer.text()
                assert 'role="alert"' in html, path
            assert await ui_rows(stack, path) == [(CAROL, "deny", f"refused-{status}")]
        assert await store_snapshot(stack) == before
        bob = await user_store.get_user_by_email(stack.app[ENGINE], BOB)
        assert bob is not None and bob.active
        assert "operator reaches every tenant" in (
            await (
                await post(
                    stack,
                    CAROL,
                    "/users/alice@acme.test/memberships/role",
                    {"tenant": "acme", "role": "operator"},
                    csrf=token,
                )
            ).text()
        )


async def test_a_change_without_the_sessions_csrf_token_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        others = await csrf_of(stack, CAROL)
        before = await store_snapshot(stack)
        path = "/users/alice@acme.test/deactivate"
        for csrf in (None, "", others):
            async with await post(stack, SUPER, path, {}, csrf=csrf) as answer:
                assert answer.status == 403
        assert await ui_rows(stack, path) == [(SUPER, "deny", "csrf-failed")] * 3
        assert await store_snapshot(stack) == before


async def test_bad_input_is_explained_and_what_was_typed_is_kept(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await csrf_of(stack, SUPER)
        before = await store_snapshot(stack)
        typed = {"email": "dana@nowhere", "name": "Dana Q", "tenant": "acme", "role": "readonly"}
        async with await post(stack, SUPER, "/users/invite", typed, csrf=token) as answer:
            html = await answer.text()
            assert answer.status == 422
            assert "is not a plain email address" in html
            assert 'value="dana@nowhere"' in html and 'value="Dana Q"' in html
            assert '<option value="readonly" selected>' in html
        bad_role = {**typed, "email": "dana@acme.test", "role": "wizard"}
        async with await post(stack, SUPER, "/users/invite", bad_role, csrf=token) as answer:
            assert answer.status == 422 and "unknown role &#39;wizard&#39;" in await answer.text()
        tenant = {"id": "Bad Id", "name": "Initech"}
        async with await post(stack, SUPER, "/tenants", tenant, csrf=token) as answer:
            html = await answer.text()
            assert answer.status == 422 and "use lower-case letters" in html
            assert 'value="Bad Id"' in html and 'value="Initech"' in html
        async with await post(stack, SUPER, "/tenants", {"id": "acme"}, csrf=token) as answer:
            assert answer.status == 409 and "exists already" in await answer.text()
        path = "/tenants/acme/api-keys/x1/revoke"
        async with await post(stack, SUPER, path, {}, csrf=token) as answer:
            assert answer.status == 404
        assert await store_snapshot(stack) == before


async def test_changes_made_on_the_pages_are_done_and_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await csrf_of(stack, CAROL)
        rita = "/users/rita@acme.test"
        role = {"tenant": "acme", "role": "standard"}
        async with await post(stack, CAROL, rita + "/memberships/role", role, csrf=token) as answer:
            assert answer.status == 303
            assert answer.headers["Location"].startswith(UI + "/users/rita@acme.test?notice=")
        async with await post(stack, CAROL, rita + "/deactivate", {}, csrf=token) as answer:
            assert answer.status == 303
        status, html = await page(stack, CAROL, "/users/rita@acme.test")
        assert status == 200 and "deactivated" in html and "Reactivate" in html
        [changed] = await stack.events("role-changed")
        assert changed["actor"] == CAROL
        assert changed["data"]["before"]["memberships"] == ["readonly@acme"]
        assert changed["data"]["after"]["memberships"] == ["standard@acme"]
        [deactivated] = await stack.events("user-deactivated")
        assert deactivated["data"]["after"]["active"] is False
        # Carol's own session is untouched; the page keeps working.
        assert (await page(stack, CAROL, "/tenants/acme"))[0] == 200


async def test_sessions_keys_and_grants_are_managed_from_the_pages(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await csrf_of(stack, SUPER)
        alice = "/users/alice@acme.test"
        second = await stack.mint("alice@acme.test")
        _, html = await page(stack, SUPER, alice)
        hashes = re.findall(r'name="session" value="([0-9a-f]{64})"', html)
        assert len(hashes) == 2
        async with await post(
            stack, SUPER, alice + "/sessions/end", {"session": hashes[0]}, csrf=token
        ) as answer:
            assert answer.status == 303
        _, html = await page(stack, SUPER, alice)
        assert re.findall(r'name="session" value="([0-9a-f]{64})"', html) == hashes[1:]
        async with await post(stack, SUPER, alice + "/sessions/end", {}, csrf=token) as answer:
            assert answer.status == 303
        assert "No open sessions." in (await page(stack, SUPER, alice))[1]
        headers = {"Cookie": f"__Host-gatehold={second}"}
        async with stack.client.get("/api/invoices/7", headers=headers) as refused:
            assert refused.status == 401

        grant = {"tenant": "globex", "role": "readonly"}
        async with await post(stack, SUPER, alice + "/memberships", grant, csrf=token) as answer:
            assert answer.status == 303
        async with await post(stack, SUPER, alice + "/memberships", grant, csrf=token) as answer:
            assert answer.status == 409 and "already" in await answer.text()
        path = alice + "/memberships/remove"
        async with await post(stack, SUPER, path, grant, csrf=token) as answer:
            assert answer.status == 303
        row = await user_store.get_user_by_email(stack.app[ENGINE], "alice@acme.test")
        assert row is not None and [f"{m.role}@{m.tenant}" for m in row.memberships] == [
            "standard@acme"
        ]

        created = await stack.client.post(
            "/.gatehold/api/api-keys",
            json={"tenant": "acme", "role": "standard", "label": "ci", "expires": "1d"},
            headers=stack.cookie(SUPER) | {"X-CSRF-Token": await api_csrf(stack)},
        )
        assert created.status == 201, await created.text()
        key_id = (await created.json())["api_key"]["id"]
        wrong = f"/tenants/globex/api-keys/{key_id}/revoke"
        async with await post(stack, SUPER, wrong, {}, csrf=token) as answer:
            assert answer.status == 404, "a key is revoked only from its own tenant's page"
        right = f"/tenants/acme/api-keys/{key_id}/revoke"
        async with await post(stack, SUPER, right, {}, csrf=token) as answer:
            assert answer.status == 303
        [revoked] = await stack.events("apikey-revoked")
        assert revoked["actor"] == SUPER and revoked["data"]["after"] == {"revoked": True}


async def api_csrf(stack: Stack) -> str:
    async with stack.client.get("/.gatehold/api/me", headers=stack.cookie(SUPER)) as me:
        token: str = (await me.json())["csrf_token"]
        return token
