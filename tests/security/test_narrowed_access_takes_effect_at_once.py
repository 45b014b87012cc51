"""An admin narrows someone's access; their very next request is judged by the new state.

Through the real gateway and Ledger: a request allowed before the change is refused right
after it (the live session ends, and a fresh one holds only what is left), nothing reaches
Ledger, and the refusal is audited with its reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.admin import service as admin
from gateway.admin.service import AdminContext, AdminError
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.store import api_keys as key_store
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
ACME_INVOICE = "/api/invoices/7"

Change = Callable[[AdminContext], Awaitable[Any]]


def context(stack: Stack, *, in_process: bool) -> AdminContext:
    """The admin service over the running gateway's store and audit writer.

    ``in_process``: as the admin API will, through the gateway's session manager (its
    cache forgets the sessions at once); otherwise as the CLI does, through the store
    only, which the gateway learns from its revocation poll.
    """
    gw = stack.app[GATEWAY]
    return AdminContext(
        stack.app[ENGINE],
        gw.audit,
        admin.CLI_ADMIN,
        frozenset(stack.ruleset.roles),
        end_sessions=gw.sessions.revoke_user if in_process else None,
    )


async def refused(
    stack: Stack, headers: dict[str, str], *, method: str = "GET", path: str = ACME_INVOICE
) -> tuple[int, str]:
    """Send one request; assert nothing reached Ledger and the audit row says deny.
    Returns the status and the audited reason."""
    before = await stack.ledger_total()
    response = await stack.client.request(method, path, headers=headers | API, json=None)
    await response.read()
    request_id = response.headers["X-Request-Id"]
    assert response.status in (401, 403, 404), response.status
    assert await stack.ledger_total() == before
    assert request_id not in await stack.ledger_hits()
    (row, *_) = await stack.audit_rows(request_id)
    assert row["decision"] == "deny"
    return response.status, str(row["reason"])


async def allowed(stack: Stack, headers: dict[str, str], path: str = ACME_INVOICE) -> None:
    response = await stack.client.get(path, headers=headers | API)
    await response.read()
    assert response.status == 200, response.status


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"__Host-gatehold={token}"}


NARROWING: dict[str, tuple[Change, str]] = {
    "membership removed": (
        lambda c: admin.remove_membership(c, "alice@acme.test", "acme", "standard"),
        "role-forbidden",  # a fresh session holds no role at all
    ),
    "user deactivated": (
        lambda c: admin.set_user_active(c, "alice@acme.test", False),
        "",  # a deactivated person gets no session at all
    ),
    "tenant deactivated": (lambda c: admin.deactivate_tenant(c, "acme"), "role-forbidden"),
}


@pytest.mark.parametrize("in_process", [True, False], ids=["admin-api", "cli"])
@pytest.mark.parametrize("change", NARROWING, ids=list(NARROWING))
async def test_a_narrowing_change_refuses_the_next_request(
    tmp_path: Path, change: str, in_process: bool
) -> None:
    work, fresh_reason = NARROWING[change]
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie("alice@acme.test")
        await allowed(stack, alice)

        done = await work(context(stack, in_process=in_process))
        assert not isinstance(done, AdminError), done
        if not in_process:  # another process: this gateway learns it from its poll
            await stack.revocations_noticed(sessions=[stack.cookies["alice@acme.test"]])

        assert await refused(stack, alice) == (401, "session-invalid")
        if fresh_reason:
            fresh = cookie(await stack.mint("alice@acme.test"))
            status, reason = await refused(stack, fresh)
            assert (status, reason) == (403, fresh_reason)


async def test_a_role_change_refuses_what_the_old_role_allowed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie("alice@acme.test")
        response = await stack.client.get("/files/1", headers=alice | API)
        await response.read()
        assert response.status == 200

        ctx = context(stack, in_process=True)
        done = await admin.change_role(ctx, "alice@acme.test", "acme", "readonly")
        assert not isinstance(done, AdminError), done

        assert await refused(stack, alice, path="/files/1") == (401, "session-invalid")
        fresh = cookie(await stack.mint("alice@acme.test"))
        assert await refused(stack, fresh, path="/files/1") == (403, "role-forbidden")
        await allowed(stack, fresh)  # readonly still reads
        (event,) = await stack.events("role-changed")
        assert event["data"]["before"]["memberships"] == ["standard@acme"]
        assert event["data"]["after"]["memberships"] == ["readonly@acme"]


async def test_a_key_of_a_deactivated_tenant_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ctx = context(stack, in_process=True)
        created = await admin.create_api_key(
            ctx, tenant="acme", role="readonly", label="erp", ttl=3600
        )
        assert not isinstance(created, AdminError)
        bearer = {"Authorization": f"Bearer {created[1]}"}
        await allowed(stack, bearer)

        assert (
            await admin.deactivate_tenant(ctx, "acme") == 4
        )  # admin, carol, alice and rita hold acme
        await stack.revocations_noticed(api_keys=[created[1]])  # the key cache's poll
        assert (await refused(stack, bearer))[0] == 401
        # Even a key the revocation missed is not loaded for an inactive tenant.
        assert await key_store.find_key(stack.app[ENGINE], created[1]) is None


async def test_reactivation_lets_the_person_sign_in_again(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ctx = context(stack, in_process=True)
        assert await admin.set_user_active(ctx, "alice@acme.test", False) == 1
        assert await admin.set_user_active(ctx, "alice@acme.test", True) == 0
        await allowed(stack, cookie(await stack.mint("alice@acme.test")))
