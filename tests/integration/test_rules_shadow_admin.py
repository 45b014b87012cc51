"""Shadow mode through the admin API and the admin UI: the same service as the CLI,
superadmins only, the report grouped by route and reason, activation only when clean."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app import ENGINE
from gateway.shadow import SHADOW
from gateway.shadow_sync import SHADOW_FOLLOWER
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from tests.support.admin_api import admin_key, as_person, with_key
from tests.support.stack import DEMO_RULES, Stack, running_stack

READONLY = "  readonly: {can: [read]}\n"
WRITE_NOT_READ = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [write]}\n")
SAME_DECISIONS = DEMO_RULES.read_text() + "# the same rules, one comment more\n"
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}
UI = "/.gatehold/admin"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
ADMIN, CAROL, RITA = "admin@example.test", "carol@acme.test", "rita@acme.test"


async def traffic(stack: Stack) -> None:
    """Rita lists invoices (the shadow refuses her) and Alice reads one (both allow)."""
    for email, target in ((RITA, "/api/invoices"), ("alice@acme.test", "/api/invoices/1")):
        async with stack.client.get(target, headers=stack.cookie(email)) as answer:
            assert answer.status == 200
    await stack.settled()
    await stack.app[SHADOW].writer.flush()


async def test_the_api_starts_reports_refuses_and_stops_a_shadow(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        admin = with_key(stack, await admin_key(stack, "*"))
        tenant_admin = with_key(stack, await admin_key(stack, "acme"))
        carol = await as_person(stack, CAROL)
        draft = (await admin.call("POST", "/rules/versions", {"yaml": WRITE_NOT_READ})).body["id"]

        for outsider in (tenant_admin, carol):
            refused = await outsider.call("POST", "/rules/shadow", {"version": draft})
            assert refused.status == 403, refused.body
            assert (await outsider.get("/rules/shadow")).status == 403
            assert (await outsider.call("POST", "/rules/shadow/activate", {})).status == 403
            assert (await outsider.call("POST", "/rules/shadow/stop", {})).status == 403
        assert await shadow_store.latest(stack.app[ENGINE]) is None, "nothing was started"
        assert (await admin.get("/rules/shadow")).status == 404
        bad = await admin.call("POST", "/rules/shadow", {"version": "one"})
        assert bad.status == 422

        started = await admin.call("POST", "/rules/shadow", {"version": draft, "comment": "try"})
        assert started.status == 201 and started.body["version"] == draft, started.body
        again = await admin.call("POST", "/rules/shadow", {"version": draft})
        assert again.status == 409
        await stack.app[SHADOW_FOLLOWER].step()
        await traffic(stack)

        report = (await admin.get("/rules/shadow")).body
        assert (report["clean"], report["run"]["decided"], report["differences"]) == (False, 2, 1)
        [group] = report["groups"]
        assert (group["live_route"], group["live"], group["shadow"]) == (
            "invoice-list",
            {"decision": "allow", "reason": "role-allowed"},
            {"decision": "deny", "reason": "role-forbidden"},
        )
        assert group["samples"][0]["principal"] == RITA
        refused = await admin.call("POST", "/rules/shadow/activate", {})
        assert refused.status == 409 and "not clean" in refused.body["detail"]
        stopped = await admin.call("POST", "/rules/shadow/stop", {"comment": "enough"})
        assert stopped.status == 200 and not stopped.body["running"]
        assert (await admin.call("POST", "/rules/shadow/stop", {})).status == 404
        kept = (await admin.get("/rules/shadow", params={"run": started.body["id"]})).body
        assert kept["differences"] == 1 and not kept["run"]["running"]


async def ui_page(stack: Stack, email: str, path: str) -> tuple[int, str]:
    async with stack.client.get(UI + path, headers=stack.cookie(email)) as answer:
        return answer.status, await answer.text()


async def ui_post(stack: Stack, email: str, path: str, data: dict[str, str]) -> int:
    _, body = await ui_page(stack, email, "/rules")
    token = CSRF.search(body)
    assert token is not None
    async with stack.client.post(
        UI + path,
        data={"csrf": token.group(1), **data},
        headers=stack.cookie(email),
        allow_redirects=False,
    ) as answer:
        return answer.status


async def test_the_ui_starts_a_shadow_shows_its_report_and_activates_it_when_clean(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        engine = stack.app[ENGINE]
        admin = with_key(stack, await admin_key(stack, "*"))
        noisy = (await admin.call("POST", "/rules/versions", {"yaml": WRITE_NOT_READ})).body["id"]
        same = (await admin.call("POST", "/rules/versions", {"yaml": SAME_DECISIONS})).body["id"]

        status, body = await ui_page(stack, ADMIN, "/rules/shadow")
        assert status == 200 and "No version in shadow" in body
        status, body = await ui_page(stack, ADMIN, f"/rules/versions/{noisy}")
        assert f"Start version {noisy} in shadow" in body
        assert await ui_post(stack, CAROL, f"/rules/versions/{noisy}/shadow", {}) == 403
        assert (await ui_page(stack, CAROL, "/rules/shadow"))[0] == 403
        assert await ui_post(stack, ADMIN, f"/rules/versions/{noisy}/shadow", {}) == 303
        await stack.app[SHADOW_FOLLOWER].step()
        await traffic(stack)
        status, body = await ui_page(stack, ADMIN, "/rules/shadow")
        assert status == 200 and f"Version {noisy} is in shadow" in body
        assert "invoice-list" in body and "DENY role-forbidden" in body
        assert "1 of 2 decisions differ" in body and "Activate version" not in body
        assert await ui_post(stack, ADMIN, "/rules/shadow/activate", {}) == 409
        assert await ui_post(stack, ADMIN, "/rules/shadow/stop", {}) == 303

        assert await ui_post(stack, ADMIN, f"/rules/versions/{same}/shadow", {}) == 303
        await stack.app[SHADOW_FOLLOWER].step()
        await traffic(stack)
        status, body = await ui_page(stack, ADMIN, "/rules/shadow")
        assert "clean: no differences over 2 decisions" in body
        assert f"Activate version {same}" in body
        assert await ui_post(stack, ADMIN, "/rules/shadow/activate", {"comment": "ok"}) == 303
        assert await version_store.active_id(engine) == same
        assert await shadow_store.running(engine) is None
