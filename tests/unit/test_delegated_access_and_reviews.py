"""Delegated administration of access requests and reviews, over the demo's people.

The acme admin (``carol@acme.test``, admin in acme only, acting as ``acting_admin``
builds her from her session) cannot list, read, approve or decline globex's access
requests, by guessed ids or otherwise, nor review, attest, revoke or export globex:
every attempt is refused, nothing changes, and nothing is audited as done.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import access, reviews
from gateway.admin import service as admin
from gateway.admin.actors import acting_admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.demo.run import seed_gateway
from gateway.model import AuthMethod, Principal
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.unit.test_admin_service import events
from tests.unit.test_delegated_admin import KEY, ROLES

CAROL = "carol@acme.test"


@pytest.fixture
async def ctx(engine: AsyncEngine) -> AsyncIterator[AdminContext]:
    await seed_gateway(engine)
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    try:
        yield AdminContext(
            engine,
            writer,
            admin.CLI_ADMIN,
            frozenset(ROLES),
            global_roles=admin.global_roles(ROLES),
        )
    finally:
        await writer.close()


async def carol(ctx: AdminContext) -> AdminContext:
    user = await user_store.get_user_by_email(ctx.engine, CAROL)
    assert user is not None
    principal = Principal(
        user_id=str(user.id),
        email=user.email,
        memberships=user.memberships,
        auth_method=AuthMethod.MAGIC_LINK,
        auth_time=time.time(),
    )
    actor = acting_admin(principal, ROLES)
    assert actor == Admin(CAROL, tenants=frozenset({"acme"}))
    return AdminContext(ctx.engine, ctx.audit, actor, ctx.roles, global_roles=ctx.global_roles)


async def asks(
    ctx: AdminContext, email: str, tenant: str, role: str | None = "readonly"
) -> AccessRequestRow | AdminError:
    user = await user_store.get_user_by_email(ctx.engine, email)
    assert user is not None
    requester = AdminContext(
        ctx.engine, ctx.audit, Admin(email), ctx.roles, global_roles=ctx.global_roles
    )
    return await access.request_access(
        requester, user_id=user.id, tenant=tenant, what=f"/t/{tenant}/x", why="work", role=role
    )


async def asked(ctx: AdminContext, email: str, tenant: str) -> AccessRequestRow:
    row = await asks(ctx, email, tenant)
    assert isinstance(row, AccessRequestRow), row
    return row


async def audit_kinds(ctx: AdminContext) -> list[str]:
    await ctx.audit.settled()
    async with ctx.engine.connect() as conn:
        rows = await conn.execute(text("SELECT kind FROM audit_log ORDER BY seq"))
        return [kind for (kind,) in rows]


async def test_the_acme_admin_cannot_touch_globex_requests(ctx: AdminContext) -> None:
    to_globex = await asked(ctx, "alice@acme.test", "globex")
    to_acme = await asked(ctx, "bob@globex.test", "acme")
    as_carol = await carol(ctx)
    before = await audit_kinds(ctx)

    listed = await access.list_access_requests(as_carol, state=None)
    assert not isinstance(listed, AdminError) and [r.id for r in listed] == [to_acme.id]
    named = await access.list_access_requests(as_carol, tenant="globex")
    assert isinstance(named, AdminError) and named.code == "forbidden"

    missing = to_globex.id + to_acme.id + 100
    answers: list[Any] = []
    for request_id in (to_globex.id, missing):  # a foreign id and a guessed one: one answer
        for work in (
            access.get_access_request(as_carol, request_id),
            access.approve_access_request(as_carol, request_id, "readonly"),
            access.decline_access_request(as_carol, request_id, "no"),
        ):
            refused = await work
            assert isinstance(refused, AdminError) and refused.code == "not-found"
            answers.append(refused.message.replace(str(request_id), "N"))
    assert answers[:3] == answers[3:]

    unchanged = await access.get_access_request(ctx, to_globex.id)
    assert isinstance(unchanged, AccessRequestRow) and unchanged.state == "pending"
    alice = await user_store.get_user_by_email(ctx.engine, "alice@acme.test")
    assert alice is not None and all(m.tenant != "globex" for m in alice.memberships)
    assert await audit_kinds(ctx) == before  # nothing done, nothing recorded as done


async def test_the_acme_admin_decides_acme_requests(ctx: AdminContext) -> None:
    to_acme = await asked(ctx, "bob@globex.test", "acme")
    approved = await access.approve_access_request(await carol(ctx), to_acme.id)
    assert isinstance(approved, AccessRequestRow) and approved.decided_by == CAROL
    bob = await user_store.get_user_by_email(ctx.engine, "bob@globex.test")
    assert bob is not None and {m.tenant for m in bob.memberships} == {"acme", "globex"}
    [event] = await events(ctx.engine, "access-request-approved")
    assert event["actor"] == CAROL and event["tenant"] == "acme"


@pytest.mark.parametrize("tenant", ["globex", "*", "nosuch"])
async def test_the_acme_admin_cannot_review_attest_revoke_or_export_other_tenants(
    ctx: AdminContext, tenant: str
) -> None:
    as_carol = await carol(ctx)
    before = await audit_kinds(ctx)
    for work in (
        reviews.review_tenant(as_carol, tenant),
        reviews.attest_review(as_carol, tenant, "looks fine"),
        reviews.list_attestations(as_carol, tenant),
        reviews.export_review_csv(as_carol, tenant),
        reviews.revoke_member(as_carol, tenant, "bob@globex.test"),
    ):
        refused = await work
        assert isinstance(refused, AdminError), refused
        # An existing foreign tenant and a made-up one are refused alike.
        assert refused.code == "forbidden"
        assert refused.message == f"{CAROL} does not administer tenant {tenant!r}"
    bob = await user_store.get_user_by_email(ctx.engine, "bob@globex.test")
    assert bob is not None and [m.tenant for m in bob.memberships] == ["globex"]
    assert await reviews.list_attestations(ctx, "globex") == []
    assert await audit_kinds(ctx) == before


async def test_the_acme_admin_reviews_acme(ctx: AdminContext) -> None:
    as_carol = await carol(ctx)
    rows = await reviews.review_tenant(as_carol, "acme")
    assert not isinstance(rows, AdminError)
    assert [r.email for r in rows] == [
        "admin@example.test",
        "alice@acme.test",
        "carol@acme.test",
        "rita@acme.test",
    ]
    attested = await reviews.attest_review(as_carol, "acme", "Q4")
    assert not isinstance(attested, AdminError) and attested.reviewer == CAROL
    revoked = await reviews.revoke_member(as_carol, "acme", "rita@acme.test")
    assert not isinstance(revoked, AdminError) and revoked.memberships == ()


@pytest.mark.parametrize("role", ["operator", "auditor"])
async def test_a_role_reaching_every_tenant_is_neither_asked_for_nor_granted_by_a_tenant_admin(
    ctx: AdminContext, role: str
) -> None:
    asked_for = await asks(ctx, "bob@globex.test", "acme", role)
    assert isinstance(asked_for, AdminError) and "reaches every tenant" in asked_for.message
    row = await asks(ctx, "bob@globex.test", "acme", None)
    assert isinstance(row, AccessRequestRow)
    refused = await access.approve_access_request(await carol(ctx), row.id, role)
    assert isinstance(refused, AdminError) and refused.code == "forbidden"
    bob = await user_store.get_user_by_email(ctx.engine, "bob@globex.test")
    assert bob is not None and [m.tenant for m in bob.memberships] == ["globex"]
    still = await access.get_access_request(ctx, row.id)
    assert isinstance(still, AccessRequestRow) and still.state == "pending"


async def test_the_roles_offered_for_an_approval_are_those_the_approval_accepts(
    ctx: AdminContext,
) -> None:
    as_carol = await carol(ctx)
    offered = access.approvable_roles(as_carol)
    assert offered == sorted(set(ROLES) - ctx.global_roles) and offered
    assert access.approvable_roles(ctx) == sorted(ROLES)  # a superadmin grants every role
    for role in offered:
        row = await asks(ctx, "bob@globex.test", "acme", None)
        assert isinstance(row, AccessRequestRow), row
        approved = await access.approve_access_request(as_carol, row.id, role)
        assert isinstance(approved, AccessRequestRow), (role, approved)
        revoked = await reviews.revoke_member(as_carol, "acme", "bob@globex.test")
        assert not isinstance(revoked, AdminError), revoked
