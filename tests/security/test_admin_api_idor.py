"""The admin API is an IDOR target too: an acme admin changes ids in paths and bodies to
reach into globex. Each attempt is refused, changes nothing in the store, and leaves an
audit row naming the admin. Run as carol's signed-in session and as an acme admin key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.app import ENGINE
from gateway.store import api_keys
from tests.support.admin_api import (
    AdminClient,
    admin_key,
    api_rows,
    as_person,
    store_snapshot,
    with_key,
)
from tests.support.stack import Stack, running_stack

BOB = "bob@globex.test"
SUPER = "admin@example.test"
ATTEMPTS: list[tuple[str, str, Any, int]] = [
    # read
    ("GET", f"/users/{BOB}", None, 404),
    ("GET", f"/users/{BOB}/sessions", None, 404),
    ("GET", "/tenants/globex", None, 404),
    ("GET", "/audit?tenant=globex", None, 403),
    ("GET", "/audit/export?tenant=globex&format=csv", None, 403),
    ("POST", "/rules/simulate", {"user": BOB, "method": "GET", "target": "/api/invoices/8"}, 404),
    # change a globex person
    ("POST", f"/users/{BOB}/memberships", {"tenant": "acme", "role": "admin"}, 404),
    ("PUT", f"/users/{BOB}/memberships/globex", {"role": "admin"}, 404),
    ("DELETE", f"/users/{BOB}/memberships/globex/standard", None, 404),
    ("POST", f"/users/{BOB}/deactivate", None, 404),
    ("DELETE", f"/users/{BOB}/sessions", None, 404),
    ("POST", f"/users/{BOB}/factors/reset", None, 404),
    # a person who also belongs to globex (and is a superadmin)
    ("POST", f"/users/{SUPER}/deactivate", None, 403),
    ("DELETE", f"/users/{SUPER}/sessions", None, 403),
    ("POST", f"/users/{SUPER}/factors/reset", None, 403),
    ("DELETE", f"/users/{SUPER}/memberships/globex/admin", None, 403),
    # grant or invite into globex by changing the tenant in the body or the path
    ("POST", "/users/alice@acme.test/memberships", {"tenant": "globex", "role": "admin"}, 422),
    ("PUT", "/users/alice@acme.test/memberships/globex", {"role": "admin"}, 422),
    (
        "POST",
        "/users",
        {"email": "mole@globex.test", "memberships": [{"tenant": "globex", "role": "admin"}]},
        422,
    ),
    (
        "POST",
        "/users",
        {"email": "alice@acme.test", "memberships": [{"tenant": "globex", "role": "standard"}]},
        422,
    ),
    (
        "POST",
        "/users",
        {"email": "mole@acme.test", "memberships": [{"tenant": "*", "role": "admin"}]},
        422,
    ),
    (
        "POST",
        "/users",
        {
            "email": "boss@acme.test",
            "superadmin": True,
            "memberships": [{"tenant": "acme", "role": "admin"}],
        },
        403,
    ),
    # a role of global scope, granted "in acme", would reach globex too
    ("POST", "/users/alice@acme.test/memberships", {"tenant": "acme", "role": "operator"}, 422),
    ("PUT", "/users/alice@acme.test/memberships/acme", {"role": "auditor"}, 422),
    (
        "POST",
        "/users",
        {"email": "mole@acme.test", "memberships": [{"tenant": "acme", "role": "operator"}]},
        422,
    ),
    ("POST", "/api-keys", {"tenant": "acme", "role": "auditor"}, 422),
    # tenants and keys
    ("PATCH", "/tenants/globex", {"display_name": "Ours now"}, 403),
    ("POST", "/tenants/globex/deactivate", None, 403),
    ("POST", "/api-keys", {"tenant": "globex", "role": "admin"}, 422),
    ("POST", "/api-keys", {"tenant": "acme", "role": "admin", "admin": True}, 403),
]


async def acme_admin(stack: Stack, kind: str) -> AdminClient:
    if kind == "session":
        return await as_person(stack, "carol@acme.test")
    return with_key(stack, await admin_key(stack, "acme"))


@pytest.mark.parametrize("kind", ["session", "admin-key"])
async def test_an_acme_admin_cannot_reach_into_globex(tmp_path: Path, kind: str) -> None:
    async with running_stack(tmp_path) as stack:
        _, globex_key = await api_keys.create_key(
            stack.app[ENGINE],
            tenant="globex",
            role="standard",
            label="g",
            ttl=3600,
            now=time.time(),
        )
        carol = await acme_admin(stack, kind)
        me = (await carol.get("/me")).body["name"]
        globex_key_id = max(
            k.id for k in await api_keys.list_keys(stack.app[ENGINE]) if k.tenant == "globex"
        )
        attempts = [*ATTEMPTS, ("DELETE", f"/api-keys/{globex_key_id}", None, 404)]
        before = await store_snapshot(stack)
        for method, path, body, status in attempts:
            reply = await carol.call(method, path, body)
            assert reply.status == status, (method, path, reply.body)
            assert reply.content_type.startswith("application/problem+json"), (method, path)
            rows = await api_rows(stack, reply.request_id)
            assert [(r["actor"], r["method"], r["decision"]) for r in rows] == [
                (me, method, "deny")
            ], (method, path)
            assert await store_snapshot(stack) == before, (method, path)
        assert globex_key  # still works upstream: nothing was revoked
        upstream = await stack.client.get(
            "/api/invoices/8", headers={"Authorization": f"Bearer {globex_key}"}
        )
        assert upstream.status == 200


@pytest.mark.parametrize("kind", ["session", "admin-key"])
async def test_an_acme_admin_lists_nothing_of_globex(tmp_path: Path, kind: str) -> None:
    async with running_stack(tmp_path) as stack:
        await api_keys.create_key(
            stack.app[ENGINE],
            tenant="globex",
            role="standard",
            label="g",
            ttl=3600,
            now=time.time(),
        )
        await stack.client.get("/api/invoices/8", headers=stack.cookie(BOB))
        await stack.client.get("/api/invoices/7", headers=stack.cookie("alice@acme.test"))
        await stack.settled()
        carol = await acme_admin(stack, kind)
        people = (await carol.get("/users")).body["items"]
        assert BOB not in {p["email"] for p in people}
        assert [t["id"] for t in (await carol.get("/tenants")).body["items"]] == ["acme"]
        assert {k["tenant"] for k in (await carol.get("/api-keys")).body["items"]} <= {"acme"}
        rows = (await carol.get("/audit", params={"limit": "500"})).body["items"]
        assert rows and {r["tenant"] for r in rows} == {"acme"}
        assert BOB not in {r["actor"] for r in rows}
        export = await carol.get("/audit/export", params={"format": "jsonl"})
        assert export.status == 200 and "globex" not in export.body


async def test_an_acme_admin_sees_no_globex_role_of_a_person_both_tenants_share(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        carol = await as_person(stack, "carol@acme.test")
        shared = await carol.get(f"/users/{SUPER}")
        assert shared.status == 200
        assert shared.body["memberships"] == [{"tenant": "acme", "role": "admin"}]
        listed = {u["email"]: u for u in (await carol.get("/users")).body["items"]}
        assert listed[SUPER]["memberships"] == [{"tenant": "acme", "role": "admin"}]
        admin = await as_person(stack, SUPER)
        full = (await admin.get(f"/users/{SUPER}")).body["memberships"]
        assert {"tenant": "globex", "role": "admin"} in full
