"""The admin API over the rules lifecycle, access requests, reviews and invites: the
same service functions the CLI runs, with every problem of a draft listed by line."""

from __future__ import annotations

from pathlib import Path

from gateway.admin import access
from gateway.admin.service import Admin, AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.store import users as user_store
from tests.support.admin_api import admin_key, as_person, with_key
from tests.support.stack import DEMO_RULES, running_stack

READONLY = "  readonly: {can: [read]}\n"
NARROWED = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [download]}\n")
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}
RITA = "rita@acme.test"


async def test_a_draft_is_proposed_simulated_previewed_activated_and_rolled_back(
    tmp_path: Path,
) -> None:
    assert NARROWED != DEMO_RULES.read_text()
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        admin = with_key(stack, await admin_key(stack, "*"))
        [first] = (await admin.get("/rules/versions")).body["items"]
        assert first["active"] and first["yaml"] == ""

        broken = NARROWED.replace("version: 1", "version: 7").replace("can:", "cann:", 1)
        refused = await admin.call("POST", "/rules/versions", {"yaml": broken})
        assert refused.status == 422
        assert refused.content_type.startswith("application/problem+json")
        lines = [p["line"] for p in refused.body["problems"]]
        assert len(lines) >= 2 and all(isinstance(line, int) for line in lines), refused.body

        assert (await stack.client.get("/api/invoices/7", headers=stack.cookie(RITA))).status == 200
        await stack.settled()
        made = await admin.call("POST", "/rules/versions", {"yaml": NARROWED, "comment": "rita"})
        assert made.status == 201
        draft = made.body["id"]
        read = await admin.get(f"/rules/versions/{draft}")
        assert read.body["yaml"] == NARROWED and not read.body["active"]
        diff = (await admin.get(f"/rules/versions/{draft}/diff")).body["diff"]
        assert "-  readonly: {can: [read]}" in diff and "+  readonly: {can: [download]}" in diff

        ask = {"user": RITA, "method": "GET", "target": "/api/invoices/7"}
        assert (await admin.call("POST", "/rules/simulate", ask)).body["decision"] == "allow"
        under_draft = await admin.call("POST", "/rules/simulate", {**ask, "version": draft})
        assert under_draft.body["decision"] == "deny", under_draft.body

        impact = await admin.call("POST", f"/rules/versions/{draft}/impact", {"last": 100})
        assert impact.status == 200
        changed = [c for c in impact.body["changes"] if c["caller"] == RITA]
        assert changed and changed[0]["active"]["allowed"] and not changed[0]["draft"]["allowed"]

        activated = await admin.call("POST", f"/rules/versions/{draft}/activate", {"comment": "go"})
        assert activated.status == 200 and activated.body["active"]
        listed = {v["id"]: v["active"] for v in (await admin.get("/rules/versions")).body["items"]}
        assert listed == {first["id"]: False, draft: True}
        back = await admin.call("POST", f"/rules/versions/{first['id']}/activate", {})
        assert back.status == 200
        events = await stack.events("rules-activated")
        assert [e["data"]["rollback"] for e in events][-2:] == [False, True]


async def test_with_the_file_in_charge_every_change_is_409(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True) as stack:
        admin = with_key(stack, await admin_key(stack, "*"))
        refused = await admin.call("POST", "/rules/versions", {"yaml": NARROWED})
        assert refused.status == 409 and refused.body["type"].endswith("/conflict")
        [version] = (await admin.get("/rules/versions")).body["items"]
        again = await admin.call("POST", f"/rules/versions/{version['id']}/activate", {})
        assert again.status == 409


async def test_access_requests_and_reviews_through_the_api(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        gw = stack.app[GATEWAY]
        rita = await user_store.get_user_by_email(engine, RITA)
        bob = await user_store.get_user_by_email(engine, "bob@globex.test")
        assert rita is not None and bob is not None
        asks = []
        for person, tenant in ((rita, "acme"), (rita, "globex")):
            ctx = AdminContext.over(engine, gw.audit, Admin(person.email), gw.policy.roles)
            row = await access.request_access(
                ctx,
                user_id=person.id,
                tenant=tenant,
                what="/api/invoices",
                why="month end",
                role="standard",
            )
            assert not isinstance(row, access.AdminError), row
            asks.append(row.id)
        acme_ask, globex_ask = asks

        carol = await as_person(stack, "carol@acme.test")
        queue = (await carol.get("/access-requests")).body["items"]
        assert [r["id"] for r in queue] == [acme_ask]
        for verb in ("approve", "decline"):
            foreign = await carol.call("POST", f"/access-requests/{globex_ask}/{verb}", {})
            assert foreign.status == 404
        approved = await carol.call("POST", f"/access-requests/{acme_ask}/approve", {})
        assert approved.status == 200 and approved.body["granted_role"] == "standard"
        again = await carol.call("POST", f"/access-requests/{acme_ask}/decline", {})
        assert again.status in (404, 409, 422)

        review = (await carol.get("/reviews/acme", params={"idle_days": "30"})).body
        members = {m["email"]: m for m in review["members"]}
        assert "standard" in members[RITA]["roles"]
        assert (await carol.get("/reviews/globex")).status in (403, 404)
        attested = await carol.call("POST", "/reviews/acme/attest", {"comment": "q4"})
        assert attested.status == 201 and attested.body["reviewer"] == "carol@acme.test"
        export = await carol.get("/reviews/acme/export")
        assert export.status == 200 and RITA in export.body
        revoked = await carol.call("DELETE", f"/reviews/acme/members/{RITA}")
        assert revoked.status == 200 and revoked.body["memberships"] == []
        assert (await stack.client.get("/api/invoices/7", headers=stack.cookie(RITA))).status in (
            401,
            403,
        )

        invited = await carol.call(
            "POST",
            "/invites",
            {"email": "new@acme.test", "memberships": [{"tenant": "acme", "role": "readonly"}]},
        )
        assert invited.status == 201, invited.body
        into_globex = await carol.call(
            "POST",
            "/invites",
            {"email": "mole@acme.test", "memberships": [{"tenant": "globex", "role": "readonly"}]},
        )
        assert into_globex.status == 422
        assert await user_store.get_user_by_email(engine, "mole@acme.test") is None
