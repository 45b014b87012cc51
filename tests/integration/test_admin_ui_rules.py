"""The rules pages of the admin UI, spoken to as a browser's forms would (no JavaScript):
who may do what, bad input, the file in charge, and crafted ids and tokens."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gateway.admin import service
from gateway.admin.service import AdminContext
from gateway.app import ENGINE, GATEWAY
from gateway.store import rule_versions as version_store
from tests.support.stack import DEMO_RULES, Stack, running_stack

UI = "/.gatehold/admin"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
ADMIN, CAROL, RITA = "admin@example.test", "carol@acme.test", "rita@acme.test"
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}
READONLY = "  readonly: {can: [read]}\n"
NARROWED = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [download]}\n")


async def page(stack: Stack, email: str, path: str) -> tuple[int, str]:
    async with stack.client.get(UI + path, headers=stack.cookie(email)) as answer:
        return answer.status, await answer.text()


async def token(stack: Stack, email: str) -> str:
    _, body = await page(stack, email, "/rules")
    found = CSRF.search(body)
    assert found is not None, body
    return found.group(1)


async def post(stack: Stack, email: str, path: str, data: Any, **headers: str) -> tuple[int, str]:
    sent = {**stack.cookie(email), **headers}
    async with stack.client.post(UI + path, data=data, headers=sent, allow_redirects=False) as got:
        return got.status, await got.text()


async def propose(stack: Stack, email: str, text: str) -> int:
    status, _ = await post(
        stack, email, "/rules/drafts", {"csrf": await token(stack, email), "yaml": text}
    )
    assert status == 303
    rows = await version_store.list_versions(stack.app[ENGINE], limit=1)
    return rows[0].id


async def test_the_editor_checks_stores_and_keeps_what_was_typed(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        status, body = await page(stack, ADMIN, "/rules")
        assert status == 200 and "Rules draft (YAML)" in body and "Activated by" in body
        csrf = await token(stack, ADMIN)
        broken = NARROWED.replace("can: [download]", "cann: [download]").replace("\n", "\r\n")
        status, body = await post(stack, ADMIN, "/rules/check", {"csrf": csrf, "yaml": broken})
        assert status == 422
        line = 1 + NARROWED.split("\n").index("  readonly: {can: [download]}")
        assert f'<a href="#line-{line}">Line {line}</a>' in body
        assert f'id="line-{line}" class="has-problem"' in body
        assert "cann: [download]</textarea>" not in body  # the text ends later, as typed
        assert "readonly: {cann: [download]}" in body

        status, body = await post(
            stack, ADMIN, "/rules/check", {"csrf": csrf, "yaml": NARROWED.replace("\n", "\r\n")}
        )
        assert status == 200 and "No problems" in body
        assert '<span class="del">-  readonly: {can: [read]}</span>' in body
        assert '<span class="add">+  readonly: {can: [download]}</span>' in body
        draft = await propose(stack, ADMIN, NARROWED)
        stored = await version_store.get_version(stack.app[ENGINE], draft)
        assert stored is not None and stored.yaml == NARROWED, "line ends as in the file"


async def test_bad_input_gets_a_clear_message_never_a_500(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        csrf = await token(stack, ADMIN)
        before = await version_store.list_versions(stack.app[ENGINE])

        form = {"Content-Type": "application/x-www-form-urlencoded"}
        huge = urlencode({"csrf": csrf, "yaml": "#" * 2_000_000}).encode()
        status, body = await post(stack, ADMIN, "/rules/drafts", io.BytesIO(huge), **form)
        assert status == 413 and "larger than" in body

        nul = {"csrf": csrf, "yaml": "version: 1\nroles: {}\x00\n"}
        for path in ("/rules/check", "/rules/drafts"):
            status, body = await post(stack, ADMIN, path, nul)
            assert status == 422 and "NUL character" in body and 'href="#line-2"' in body

        raw = b"csrf=" + csrf.encode() + b"&yaml=version%3A+1%0A\xff\xfe"
        status, body = await post(stack, ADMIN, "/rules/drafts", raw, **form)
        assert status == 400 and "not valid UTF-8" in body

        status, body = await post(stack, ADMIN, "/rules/check", {"csrf": csrf, "yaml": ": : :"})
        assert status == 422 and "not valid YAML" in body

        ask = {"csrf": csrf, "caller": "key:99999999999999999999", "method": "GET", "target": "/"}
        status, body = await post(stack, ADMIN, "/rules/simulate", ask)
        assert status == 422 and "pick a person" in body
        ask |= {"caller": "anonymous", "target": "no-slash"}
        status, body = await post(stack, ADMIN, "/rules/simulate", ask)
        assert status == 422 and "must start with /" in body and 'value="no-slash"' in body

        for path in ("/rules/versions/abc", "/rules/versions/99999999999999999999999"):
            assert (await page(stack, ADMIN, path))[0] == 404
        impact = {"csrf": csrf, "last": "lots"}
        status, body = await post(stack, ADMIN, f"/rules/versions/{before[0].id}/impact", impact)
        assert status == 422 and "whole number" in body
        assert await version_store.list_versions(stack.app[ENGINE]) == before


async def test_a_post_without_the_token_activates_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        engine = stack.app[ENGINE]
        active = await version_store.active_id(engine)
        draft = await propose(stack, ADMIN, NARROWED)
        for data in ({}, {"csrf": "0" * 64}, {"csrf": await token(stack, CAROL)}):
            status, _ = await post(stack, ADMIN, f"/rules/versions/{draft}/activate", data)
            assert status == 403
        assert await version_store.active_id(engine) == active
        denied = [e for e in await stack.events("admin-ui") if e["reason"] == "csrf-failed"]
        assert len(denied) == 3 and {e["decision"] for e in denied} == {"deny"}
        assert {e["path"] for e in denied} == {f"{UI}/rules/versions/{draft}/activate"}


async def test_a_tenant_admin_simulates_only_within_their_tenant(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        engine = stack.app[ENGINE]
        draft = await propose(stack, ADMIN, NARROWED)
        active = await version_store.active_id(engine)
        status, body = await page(stack, CAROL, "/rules")
        assert status == 200 and "Rules draft" not in body and "bob@globex.test" not in body
        assert "rita@acme.test" in body and "version: 1" not in body
        csrf = await token(stack, CAROL)
        ask = {"csrf": csrf, "method": "GET", "target": "/api/invoices/7", "version": "active"}
        status, body = await post(stack, CAROL, "/rules/simulate", ask | {"caller": f"user:{RITA}"})
        assert status == 200 and "Allowed" in body
        status, body = await post(
            stack, CAROL, "/rules/simulate", ask | {"caller": "user:bob@globex.test"}
        )
        assert status == 404 and "Allowed" not in body

        for path in (
            f"/rules/versions/{draft}",
            f"/rules/versions/{draft}/diff",
            f"/rules?from={draft}",
        ):
            assert (await page(stack, CAROL, path))[0] == 403
        for verb in ("activate", "rollback", "impact"):
            status, _ = await post(stack, CAROL, f"/rules/versions/{draft}/{verb}", {"csrf": csrf})
            assert status == 403
        status, _ = await post(stack, CAROL, "/rules/drafts", {"csrf": csrf, "yaml": NARROWED})
        assert status == 403
        assert await version_store.active_id(engine) == active
        assert len(await version_store.list_versions(engine)) == 2
        refusals = [e for e in await stack.events("admin-ui") if e["actor"] == CAROL]
        assert {e["decision"] for e in refusals if e["data"]["status"] in (403, 404)} == {"deny"}


async def key_of(stack: Stack, tenant: str) -> int:
    gw = stack.app[GATEWAY]
    ctx = AdminContext.over(stack.app[ENGINE], gw.audit, service.CLI_ADMIN, gw.policy.roles)
    made = await service.create_api_key(
        ctx, tenant=tenant, role="readonly", label=f"{tenant} <b>reports</b>", ttl=3600
    )
    assert not isinstance(made, service.AdminError), made
    return made[0]


async def test_an_api_key_is_simulated_as_live_traffic_sees_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        acme, globex = await key_of(stack, "acme"), await key_of(stack, "globex")
        status, body = await page(stack, CAROL, "/rules")
        assert f'value="key:{acme}"' in body and f'value="key:{globex}"' not in body
        assert "acme &lt;b&gt;reports&lt;/b&gt;" in body
        ask = {"csrf": await token(stack, CAROL), "method": "GET", "target": "/api/invoices/7"}
        status, body = await post(stack, CAROL, "/rules/simulate", ask | {"caller": f"key:{acme}"})
        assert status == 200 and "Allowed" in body and f"API key {acme}" in body
        ask |= {"caller": f"key:{globex}"}
        status, body = await post(stack, CAROL, "/rules/simulate", ask)
        assert status == 404 and f"no API key {globex}" in body
        status, body = await post(stack, CAROL, "/rules/simulate", ask, **{"HX-Request": "true"})
        assert status == 404 and "<html" not in body and f"no API key {globex}" in body


async def test_with_the_file_in_charge_the_page_reads_and_changes_are_409(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True) as stack:
        engine = stack.app[ENGINE]
        status, body = await page(stack, ADMIN, "/rules")
        assert status == 200 and "managed by the file" in body and "<textarea" not in body
        assert str(DEMO_RULES) in body and "Save draft" not in body
        csrf = await token(stack, ADMIN)
        [version] = await version_store.list_versions(engine)
        for path in ("/rules/check", "/rules/drafts", f"/rules/versions/{version.id}/activate"):
            status, body = await post(stack, ADMIN, path, {"csrf": csrf, "yaml": NARROWED})
            assert status == 409 and "managed by the file" in body, path
        assert [v.id for v in await version_store.list_versions(engine)] == [version.id]
