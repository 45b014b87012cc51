"""Impact preview replays real audited requests against a draft, and forwards nothing.

A real gateway in front of the real Ledger serves requests from a person (session
cookie), a partner's API key and an anonymous caller; their audit rows are what the
preview replays. The draft narrows the ``readonly`` role: exactly the requests that
role made are listed, each with the active version's reason and the draft's, and the
request that named an object in its body (which the audit row does not hold) is
listed as skipped rather than guessed.
"""

from __future__ import annotations

from pathlib import Path

from gateway.admin import rules as lifecycle
from gateway.admin import service as admin
from gateway.admin.service import AdminContext, AdminError
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.store import rule_versions as version_store
from gateway.store.rule_versions import VersionRow
from tests.support.stack import DEMO_RULES, Stack, running_stack

READONLY = "  readonly: {can: [read]}\n"
NARROWED = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [download]}\n")
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}


def context(stack: Stack) -> AdminContext:
    return AdminContext(
        stack.app[ENGINE],
        stack.app[GATEWAY].audit,
        admin.CLI_ADMIN,
        frozenset(stack.ruleset.roles),
        settings=stack.settings,
    )


async def send(
    stack: Stack, method: str, target: str, headers: dict[str, str], body: object = None
) -> str:
    async with stack.client.request(method, target, headers=headers, json=body) as answer:
        return answer.headers["X-Request-Id"]


async def test_impact_preview_lists_every_changed_decision_with_both_reasons(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        ctx = context(stack)
        created = await admin.create_api_key(
            ctx, tenant="acme", role="readonly", label="sync", ttl=3600
        )
        assert not isinstance(created, AdminError)
        key_id, key = created
        rita, alice = stack.cookie("rita@acme.test"), stack.cookie("alice@acme.test")
        bearer = {"Authorization": f"Bearer {key}"}
        rita_list = await send(stack, "GET", "/api/invoices", rita)
        rita_read = await send(stack, "GET", "/api/invoices/1", rita)
        rita_search = await send(stack, "GET", "/api/search?invoice=3", rita)
        key_list = await send(stack, "GET", "/api/invoices", bearer)
        await send(stack, "GET", "/api/invoices", alice)  # standard: unchanged
        await send(stack, "GET", "/api/invoices", {})  # anonymous: unchanged
        rita_patch = await send(
            stack, "PATCH", "/api/invoices/1", rita, body={"related_invoice": 3}
        )
        await stack.settled()
        draft = await lifecycle.propose_version(ctx, NARROWED, "readonly may only download")
        assert isinstance(draft, VersionRow)
        active = await version_store.active_id(stack.app[ENGINE])
        hits = await stack.ledger_hits()

        preview = await lifecycle.impact_preview(ctx, draft.id, last_n=50)

        assert isinstance(preview, lifecycle.ImpactPreview), preview
        assert (preview.draft, preview.active) == (draft.id, active)
        changed = {
            (c.request_id, c.caller, c.method, c.target, c.active.allowed, c.active.reason,
             c.draft.allowed, c.draft.reason)
            for c in preview.changes
        }  # fmt: skip
        assert changed == {
            (rita_list, "rita@acme.test", "GET", "/api/invoices",
             True, "role-allowed", False, "role-forbidden"),
            (rita_read, "rita@acme.test", "GET", "/api/invoices/1",
             True, "role-allowed", False, "role-forbidden"),
            (rita_search, "rita@acme.test", "GET", "/api/search?invoice=3",
             True, "role-allowed", False, "role-forbidden"),
            (key_list, "apikey:sync", "GET", "/api/invoices",
             True, "role-allowed", False, "role-forbidden"),
        }  # fmt: skip
        assert all(c.active.steps and c.draft.steps for c in preview.changes)
        assert [s.split(":")[0] for s in preview.skipped] == [f"request {rita_patch}"]
        assert "body" in preview.skipped[0]
        assert preview.replayed == 6
        assert [c.request_id for c in preview.changes] == sorted(
            (c.request_id for c in preview.changes),
            key=[rita_list, rita_read, rita_search, key_list][::-1].index,
        ), "newest first"
        after = await stack.ledger_hits()
        assert {k: v for k, v in after.items() if k != "-"} == {
            k: v for k, v in hits.items() if k != "-"
        }, "the preview forwarded a request"
        assert await version_store.active_id(stack.app[ENGINE]) == active, "nothing activated"
        assert key_id > 0


BODY_TENANT_LINE = (
    "    body_tenant: {pointer: /tenant, on_missing: set}   # an update cannot move the row"
)
NO_ITEM_BODY_TENANT = DEMO_RULES.read_text().replace(BODY_TENANT_LINE + " to another tenant\n", "")


async def test_a_request_whose_route_binds_the_body_tenant_is_skipped_not_misjudged(
    tmp_path: Path,
) -> None:
    """The audit row holds no body: replayed without one, a ``body_tenant`` route would
    refuse (``tenant-mismatch``) what it allowed live, a difference that never was."""
    assert (
        NO_ITEM_BODY_TENANT.count("body_tenant") == DEMO_RULES.read_text().count("body_tenant") - 1
    )
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        ctx = context(stack)
        alice = stack.cookie("alice@acme.test")
        async with stack.client.put("/api/items/1", headers=alice, json={"status": "open"}) as ok:
            assert ok.status == 200
            update = ok.headers["X-Request-Id"]
        await stack.settled()
        draft = await lifecycle.propose_version(ctx, NO_ITEM_BODY_TENANT, "no body tenant")
        assert isinstance(draft, VersionRow)

        preview = await lifecycle.impact_preview(ctx, draft.id, last_n=50)

        assert isinstance(preview, lifecycle.ImpactPreview), preview
        assert [c.request_id for c in preview.changes] == []
        assert [s.split(":")[0] for s in preview.skipped] == [f"request {update}"]
        assert "the tenant it binds" in preview.skipped[0]
