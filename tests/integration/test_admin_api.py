"""The admin JSON API on a real gateway: authentication, CSRF, admin keys, each workflow."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from gateway.app import ENGINE
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from tests.support.admin_api import (
    AdminClient,
    admin_key,
    api_rows,
    as_person,
    store_snapshot,
    with_key,
)
from tests.support.stack import running_stack

SUPER = "admin@example.test"
CAROL = "carol@acme.test"
ALICE = "alice@acme.test"


async def test_me_names_the_caller_and_a_csrf_token_bound_to_the_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        carol = await as_person(stack, CAROL)
        me = await carol.get("/me")
        assert me.status == 200
        assert me.body["name"] == CAROL and me.body["superadmin"] is False
        assert me.body["tenants"] == ["acme"] and me.body["via"] == "session"
        other = await as_person(stack, SUPER)
        assert other.csrf != carol.csrf, "a token is bound to one session"
        assert (await other.get("/me")).body["superadmin"] is True


async def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        admin = await as_person(stack, SUPER)
        carol = await as_person(stack, CAROL)
        before = await store_snapshot(stack)
        for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": carol.csrf or ""}, {}):
            bare = AdminClient(stack, headers=stack.cookie(SUPER) | headers)
            refused = await bare.call("POST", "/tenants", {"id": "initech"})
            assert refused.status == 403, refused.body
            assert refused.content_type.startswith("application/problem+json")
            assert refused.body["type"] == "/.gatehold/problems/csrf-failed"
            rows = await api_rows(stack, refused.request_id)
            assert [(r["actor"], r["decision"], r["reason"]) for r in rows] == [
                (SUPER, "deny", "csrf-failed")
            ]
        assert await store_snapshot(stack) == before
        assert await tenant_store.get_tenant(stack.app[ENGINE], "initech") is None
        created = await admin.call("POST", "/tenants", {"id": "initech", "display_name": "Initech"})
        assert created.status == 201 and created.body["display_name"] == "Initech"
        assert await tenant_store.get_tenant(stack.app[ENGINE], "initech") is not None


async def test_calls_without_a_usable_credential_are_401_and_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for headers in (
            {},
            {"Cookie": "__Host-gatehold=" + "x" * 43},
            {"Authorization": "Bearer ghk_made-up"},
        ):
            reply = await AdminClient(stack, headers=headers).get("/users")
            assert reply.status == 401, headers
            assert reply.content_type.startswith("application/problem+json")
            assert set(reply.body) >= {"type", "title", "status", "detail", "request_id"}
            rows = await api_rows(stack, reply.request_id)
            assert len(rows) == 1 and rows[0]["decision"] == "deny"
            assert rows[0]["actor"].startswith("anonymous@")
        alice = AdminClient(stack, headers=stack.cookie(ALICE))
        refused = await alice.get("/users")
        assert refused.status == 403, "a person who administers nothing"
        assert [r["actor"] for r in await api_rows(stack, refused.request_id)] == [ALICE]


async def test_an_ordinary_key_is_refused_by_the_api_and_an_admin_key_by_the_proxy(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        ordinary = await admin_key(stack, "acme", admin=False, role="readonly")
        refused = await with_key(stack, ordinary).get("/users")
        assert refused.status == 403
        assert (await api_rows(stack, refused.request_id))[0]["reason"] == "forbidden"
        forwarded = await stack.client.get(
            "/api/invoices/7", headers={"Authorization": f"Bearer {ordinary}"}
        )
        assert forwarded.status == 200, "the ordinary key still works upstream"

        key = await admin_key(stack, "acme")
        acme = with_key(stack, key)
        people = await acme.get("/users")
        assert people.status == 200
        assert {u["email"] for u in people.body["items"]} == {
            SUPER,
            CAROL,
            ALICE,
            "rita@acme.test",
        }
        me = await acme.get("/me")
        assert me.body["via"] == "api-key" and me.body["csrf_token"] is None
        grant = await acme.call(
            "POST", "/users/rita@acme.test/memberships", {"tenant": "acme", "role": "standard"}
        )
        assert grant.status == 201, "no CSRF token needed with a bearer key"

        hits = await stack.ledger_total()
        upstream = await stack.client.get(
            "/api/invoices/7", headers={"Authorization": f"Bearer {key}", "Accept": "x/y"}
        )
        assert upstream.status == 401, "an admin key never reaches an upstream"
        assert await stack.ledger_total() == hits


async def test_only_a_superadmin_makes_admin_keys_and_a_star_key_administers_all(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        carol = await as_person(stack, CAROL)
        before = await store_snapshot(stack)
        refused = await carol.call(
            "POST", "/api-keys", {"tenant": "acme", "role": "admin", "admin": True}
        )
        assert refused.status == 403
        assert await store_snapshot(stack) == before
        admin = await as_person(stack, SUPER)
        made = await admin.call(
            "POST", "/api-keys", {"tenant": "*", "role": "admin", "admin": True, "expires": "1h"}
        )
        assert made.status == 201, made.body
        assert made.body["api_key"]["admin"] is True and made.body["key"].startswith("ghk_")
        everyone = with_key(stack, made.body["key"])
        assert (await everyone.get("/me")).body["superadmin"] is True
        assert (await everyone.get("/tenants/globex")).status == 200
        ordinary = await carol.call("POST", "/api-keys", {"tenant": "acme", "role": "readonly"})
        assert ordinary.status == 201 and ordinary.body["api_key"]["admin"] is False
        revoked = await carol.call("DELETE", f"/api-keys/{ordinary.body['api_key']['id']}")
        assert revoked.status == 200 and revoked.body["state"] == "revoked"
        gone = await admin.call("DELETE", f"/api-keys/{made.body['api_key']['id']}")
        assert gone.status == 200
        assert (await everyone.get("/me")).status == 401, "a revoked admin key stops at once"


async def test_malformed_bodies_are_problems_never_500(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        admin = await as_person(stack, SUPER)
        cases = [
            (b"{not json", "application/json", 400),
            (b'{"id": "\\u0000x"}', "application/json", 400),
            (b'{"id": "\\ud800"}', "application/json", 400),
            (b"[" * 5000 + b"]" * 5000, "application/json", 400),
            (b'{"id": "x"}', "text/plain", 415),
            (b'{"id": 7}', "application/json", 422),
            (b'{"id": "x", "owner": "me"}', "application/json", 422),
            (b'{"id": "Not A Slug"}', "application/json", 422),
            (b"x" * 1_100_000, "application/json", 413),
        ]
        before = await store_snapshot(stack)
        for body, media, status in cases:
            # A large body goes as a stream (the client refuses to send big raw bytes).
            data = io.BytesIO(body) if len(body) > 1_000_000 else body
            reply = await admin.call("POST", "/tenants", data=data, headers={"Content-Type": media})
            assert reply.status == status, (body[:40], reply.body)
            assert reply.content_type.startswith("application/problem+json")
        assert await store_snapshot(stack) == before
        wrong = await admin.get("/audit", params={"limit": "9999"})
        assert wrong.status == 422 and "limit" in wrong.body["detail"]
        assert (await admin.get("/audit", params={"from": "yesterday"})).status == 422
        assert (await admin.get("/users", params={"surprise": "1"})).status == 422
        assert (await admin.call("DELETE", "/api-keys/seven")).status == 404


async def test_unknown_api_paths_are_answered_here_and_never_forwarded(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        admin = await as_person(stack, SUPER)
        hits = await stack.ledger_total()
        for method, path in (("GET", "/nothing"), ("PUT", "/users"), ("POST", "/me"), ("GET", "")):
            reply = await admin.call(method, path)
            assert reply.status == 404, (method, path)
            assert reply.content_type.startswith("application/problem+json")
            rows = await api_rows(stack, reply.request_id)
            assert [(r["actor"], r["decision"]) for r in rows] == [(SUPER, "deny")]
        assert await stack.ledger_total() == hits


async def test_people_memberships_and_sessions(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        carol = await as_person(stack, CAROL)
        engine = stack.app[ENGINE]
        added = await carol.call(
            "POST",
            "/users",
            {"email": "dave@acme.test", "memberships": [{"tenant": "acme", "role": "readonly"}]},
        )
        assert added.status == 201 and added.body["memberships"] == [
            {"tenant": "acme", "role": "readonly"}
        ]
        changed = await carol.call(
            "PUT", "/users/dave@acme.test/memberships/acme", {"role": "standard"}
        )
        assert changed.status == 200 and changed.body["memberships"][0]["role"] == "standard"
        again = await carol.call(
            "PUT", "/users/dave@acme.test/memberships/acme", {"role": "standard"}
        )
        assert again.status == 409
        removed = await carol.call("DELETE", "/users/dave@acme.test/memberships/acme/standard")
        assert removed.status == 200 and removed.body["memberships"] == []
        assert (await carol.get("/users/dave@acme.test")).status == 404, "no longer carol's"

        sessions = await carol.get(f"/users/{ALICE}/sessions")
        assert sessions.status == 200 and len(sessions.body["items"]) == 1
        assert (
            await stack.client.get("/api/invoices/7", headers=stack.cookie(ALICE))
        ).status == 200
        ended = await carol.call("DELETE", f"/users/{ALICE}/sessions")
        assert ended.status == 200 and ended.body == {"sessions": 1}
        # The in-process session manager evicted the session at once: no poll to wait for.
        after = await stack.client.get(
            "/api/invoices/7", headers=stack.cookie(ALICE) | {"Accept": "application/json"}
        )
        assert after.status == 401
        off = await carol.call("POST", "/users/rita@acme.test/deactivate")
        assert off.status == 200
        rita = await user_store.get_user_by_email(engine, "rita@acme.test")
        assert rita is not None and not rita.active
        assert (await carol.call("POST", "/users/rita@acme.test/deactivate")).status == 409
        assert (await carol.call("POST", "/users/rita@acme.test/reactivate")).status == 200
        events = [e["data"]["after"] for e in await stack.events("user-deactivated")]
        assert events and events[-1]["active"] is False


async def test_tenants(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        admin = await as_person(stack, SUPER)
        carol = await as_person(stack, CAROL)
        listed = await carol.get("/tenants")
        assert [t["id"] for t in listed.body["items"]] == ["acme"]
        renamed = await carol.call("PATCH", "/tenants/acme", {"display_name": "ACME Inc."})
        assert renamed.status == 200 and renamed.body["display_name"] == "ACME Inc."
        assert (await carol.call("POST", "/tenants", {"id": "initech"})).status == 403
        assert (await admin.call("POST", "/tenants", {"id": "acme"})).status == 409
        off = await admin.call("POST", "/tenants/globex/deactivate")
        assert off.status == 200 and off.body["sessions"] >= 1
        globex = await tenant_store.get_tenant(stack.app[ENGINE], "globex")
        assert globex is not None and not globex.active
        assert (await admin.get("/me")).status == 401, "the admin, a globex member, was signed out"


async def test_simulate_decides_as_live_traffic_against_the_active_rules(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        carol = await as_person(stack, CAROL)
        allowed = await carol.call(
            "POST", "/rules/simulate", {"user": ALICE, "method": "GET", "target": "/api/invoices/7"}
        )
        assert allowed.status == 200 and allowed.body["decision"] == "allow", allowed.body
        denied = await carol.call(
            "POST", "/rules/simulate", {"user": ALICE, "method": "GET", "target": "/api/invoices/8"}
        )
        assert denied.body["decision"] == "deny" and denied.body["reason"] == "tenant-foreign"
        assert denied.body["steps"]
        both = await carol.call(
            "POST",
            "/rules/simulate",
            {"user": ALICE, "api_key": 1, "method": "GET", "target": "/"},
        )
        assert both.status == 422
        key_id = (
            await carol.call("POST", "/api-keys", {"tenant": "acme", "role": "readonly"})
        ).body["api_key"]["id"]
        as_key = await carol.call(
            "POST",
            "/rules/simulate",
            {"api_key": key_id, "method": "GET", "target": "/api/invoices/7"},
        )
        assert as_key.body["decision"] == "allow"
        admin = await as_person(stack, SUPER)
        made = await admin.call(
            "POST", "/api-keys", {"tenant": "acme", "role": "admin", "admin": True}
        )
        refused = await admin.call(
            "POST",
            "/rules/simulate",
            {"api_key": made.body["api_key"]["id"], "method": "GET", "target": "/api/invoices/7"},
        )
        assert refused.status == 422 and "admin key" in refused.body["detail"]


async def test_audit_pages_filters_and_a_tenant_admin_sees_only_their_tenants(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        for who, path in ((ALICE, "/api/invoices/7"), ("bob@globex.test", "/api/invoices/8")):
            await stack.client.get(path, headers=stack.cookie(who))
        await stack.settled()
        admin = await as_person(stack, SUPER)
        carol = await as_person(stack, CAROL)
        everything = await admin.get("/audit", params={"limit": "500"})
        tenants = {row["tenant"] for row in everything.body["items"]}
        assert {"acme", "globex"} <= tenants
        mine = await carol.get("/audit", params={"limit": "500"})
        assert {row["tenant"] for row in mine.body["items"]} == {"acme"}
        assert (await carol.get("/audit", params={"tenant": "globex"})).status == 403
        alice = await admin.get("/audit", params={"user": ALICE, "decision": "allow"})
        assert alice.body["items"] and all(r["actor"] == ALICE for r in alice.body["items"])
        late = await admin.get("/audit", params={"from": "2999-01-01T00:00:00Z"})
        assert late.body["items"] == [] and late.body["next_cursor"] is None
        epoch = await admin.get("/audit", params={"to": "0"})
        assert epoch.body["items"] == []

        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": "3"} | ({"cursor": str(cursor)} if cursor else {})
            page = await admin.get("/audit", params=params)
            seen += [row["seq"] for row in page.body["items"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
        assert min(seen) == 1


async def test_the_audit_export_streams_csv_or_jsonl_and_is_itself_audited(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.client.get("/api/invoices/7", headers=stack.cookie(ALICE))
        await stack.settled()
        carol = await as_person(stack, CAROL)
        jsonl = await carol.get("/audit/export", params={"format": "jsonl", "tenant": "acme"})
        assert jsonl.status == 200 and jsonl.content_type.startswith("application/jsonl")
        lines = [json.loads(line) for line in jsonl.body.splitlines()]
        assert lines and {line["tenant"] for line in lines} == {"acme"}
        table = await carol.get("/audit/export", params={"format": "csv"})
        assert table.status == 200 and table.content_type.startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(table.body)))
        assert rows and {row["tenant"] for row in rows} == {"acme"}
        await asyncio.sleep(0)
        exported = await stack.events("audit-exported")
        assert [(e["actor"], e["data"]["format"]) for e in exported] == [
            (CAROL, "jsonl"),
            (CAROL, "csv"),
        ]
        assert exported[0]["data"]["filter"] == {"tenant": "acme"}


async def test_the_openapi_document_describes_every_operation_and_error(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply = await AdminClient(stack).get("/openapi.json")
        assert reply.status == 200
        document = reply.body
        assert document["openapi"] == "3.1.0"
        operations = {
            (method.upper(), path) for path, item in document["paths"].items() for method in item
        }
        assert ("GET", "/.gatehold/api/me") in operations
        assert ("POST", "/.gatehold/api/rules/simulate") in operations
        assert ("GET", "/.gatehold/api/audit/export") in operations
        for path in (
            "/rules/versions",
            "/rules/versions/{version}/impact",
            "/rules/versions/{version}/activate",
            "/access-requests/{request}/approve",
            "/reviews/{tenant}/attest",
            "/invites",
            "/rules/shadow",
            "/rules/shadow/stop",
            "/rules/shadow/activate",
        ):
            assert ("POST", "/.gatehold/api" + path) in operations
        assert ("DELETE", "/.gatehold/api/shares/{share_id}") in operations
        assert ("GET", "/.gatehold/api/rules/shadow") in operations
        assert len(operations) == 48
        create = document["paths"]["/.gatehold/api/users"]["post"]
        assert {"201", "400", "401", "403", "404", "409", "413", "415", "422"} <= set(
            create["responses"]
        )
        problem = create["responses"]["403"]["content"]["application/problem+json"]["schema"]
        assert problem == {"$ref": "#/components/schemas/Problem"}
        audit = document["paths"]["/.gatehold/api/audit"]["get"]
        assert {p["name"] for p in audit["parameters"]} == {
            "user",
            "tenant",
            "route",
            "decision",
            "from",
            "to",
            "limit",
            "cursor",
        }
