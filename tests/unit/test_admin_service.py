"""The admin workflows over a real SQLite store and audit writer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import invites
from gateway.admin import service as admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.auth.magic_link import Invitation
from gateway.model import Membership
from gateway.store import api_keys as key_store
from gateway.store import sessions as session_store
from gateway.store import users as user_store

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")
ROLES = frozenset({"readonly", "standard", "admin", "operator"})


@pytest.fixture
async def ctx(engine: AsyncEngine) -> AsyncIterator[AdminContext]:
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    context = AdminContext(engine, writer, admin.CLI_ADMIN, ROLES)
    for tenant in ("acme", "globex"):
        assert not isinstance(await admin.create_tenant(context, tenant), AdminError)
    try:
        yield context
    finally:
        await writer.close()


async def events(engine: AsyncEngine, kind: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT actor, tenant, data FROM audit_log WHERE kind = :k ORDER BY seq"),
            {"k": kind},
        )
        return [{"actor": a, "tenant": t, **json.loads(d)} for a, t, d in rows]


async def live_sessions(engine: AsyncEngine, email: str) -> int:
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    rows = await session_store.list_user_sessions(engine, user.id)
    return len(rows)


async def signed_in(engine: AsyncEngine, email: str) -> None:
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    await session_store.create_session(
        engine,
        user_id=user.id,
        auth_method="magic_link",
        idle_timeout=3600,
        absolute_timeout=86400,
        auth_time=time.time(),
        now=time.time(),
        client_ip="127.0.0.1",
        user_agent="tests",
    )


async def test_tenants_are_created_listed_renamed_and_audited(ctx: AdminContext) -> None:
    renamed = await admin.rename_tenant(ctx, "acme", "Acme Corporation")
    assert not isinstance(renamed, AdminError) and renamed.display_name == "Acme Corporation"
    listed = await admin.list_tenants(ctx)
    assert [(t.id, t.display_name, t.active) for t in listed] == [
        ("acme", "Acme Corporation", True),
        ("globex", "globex", True),
    ]
    (event,) = await events(ctx.engine, "tenant-renamed")
    assert event["actor"] == "cli" and event["tenant"] == "acme"
    assert event["before"]["display_name"] == "acme"
    assert event["after"]["display_name"] == "Acme Corporation"


@pytest.mark.parametrize("bad", ["", "Acme", "acme corp", "-acme", "*", "acme/x", "a" * 70])
async def test_a_tenant_id_must_be_a_slug(ctx: AdminContext, bad: str) -> None:
    refused = await admin.create_tenant(ctx, bad)
    assert isinstance(refused, AdminError) and "lower-case letters" in refused.message


async def test_a_tenant_is_created_once(ctx: AdminContext) -> None:
    refused = await admin.create_tenant(ctx, "acme")
    assert isinstance(refused, AdminError) and "exists already" in refused.message


@pytest.mark.parametrize(
    "call",
    [
        lambda c: admin.add_user(c, "x@acme.test", [Membership("nosuch", "standard")]),
        lambda c: admin.create_api_key(c, tenant="nosuch", role="readonly", label="", ttl=60),
        lambda c: admin.rename_tenant(c, "nosuch", "Nope"),
        lambda c: admin.deactivate_tenant(c, "nosuch"),
    ],
)
async def test_every_workflow_that_names_an_unknown_tenant_refuses_it(
    ctx: AdminContext, call: Any
) -> None:
    refused = await call(ctx)
    assert isinstance(refused, AdminError)
    assert "no tenant 'nosuch'" in refused.message
    assert await user_store.get_user_by_email(ctx.engine, "x@acme.test") is None
    assert await key_store.list_keys(ctx.engine) == []


async def test_unknown_roles_and_global_keys_are_refused(ctx: AdminContext) -> None:
    role = await admin.add_user(ctx, "x@acme.test", [Membership("acme", "root")])
    assert isinstance(role, AdminError) and "unknown role 'root'" in role.message
    key = await admin.create_api_key(ctx, tenant="*", role="readonly", label="", ttl=60)
    assert isinstance(key, AdminError) and "one tenant" in key.message
    assert await key_store.list_keys(ctx.engine) == []


async def test_deactivating_a_tenant_ends_its_members_sessions_and_revokes_its_keys(
    ctx: AdminContext,
) -> None:
    await admin.add_user(ctx, "alice@acme.test", [Membership("acme", "standard")])
    await admin.add_user(ctx, "bob@globex.test", [Membership("globex", "standard")])
    for email in ("alice@acme.test", "bob@globex.test"):
        await signed_in(ctx.engine, email)
    created = await admin.create_api_key(ctx, tenant="acme", role="readonly", label="", ttl=60)
    assert not isinstance(created, AdminError)

    assert await admin.deactivate_tenant(ctx, "acme") == 1
    assert await live_sessions(ctx.engine, "alice@acme.test") == 0
    assert await live_sessions(ctx.engine, "bob@globex.test") == 1
    assert await key_store.find_key(ctx.engine, created[1]) is None
    (event,) = await events(ctx.engine, "tenant-deactivated")
    assert (event["before"]["active"], event["after"]["active"]) == (True, False)
    assert event["api_keys_revoked"] == [created[0]]
    # Nothing is granted into it any more.
    refused = await admin.add_membership(ctx, "bob@globex.test", "acme", "standard")
    assert isinstance(refused, AdminError) and "deactivated" in refused.message


async def test_users_are_deactivated_reactivated_and_audited_with_before_and_after(
    ctx: AdminContext,
) -> None:
    await admin.add_user(ctx, "alice@acme.test", [Membership("acme", "standard")])
    await signed_in(ctx.engine, "alice@acme.test")
    assert await admin.set_user_active(ctx, "alice@acme.test", False) == 1
    assert await live_sessions(ctx.engine, "alice@acme.test") == 0
    again = await admin.set_user_active(ctx, "alice@acme.test", False)
    assert isinstance(again, AdminError) and "deactivated already" in again.message
    assert await admin.set_user_active(ctx, "ALICE@acme.test", True) == 0
    user = await user_store.get_user_by_email(ctx.engine, "alice@acme.test")
    assert user is not None and user.active
    (off,) = await events(ctx.engine, "user-deactivated")
    (on,) = await events(ctx.engine, "user-reactivated")
    assert (off["before"]["active"], off["after"]["active"]) == (True, False)
    assert (on["before"]["active"], on["after"]["active"]) == (False, True)


async def test_memberships_are_added_removed_and_changed_each_ending_sessions(
    ctx: AdminContext,
) -> None:
    await admin.add_user(ctx, "alice@acme.test", [Membership("acme", "standard")])
    steps = [
        (admin.add_membership(ctx, "alice@acme.test", "globex", "readonly"), "user-added"),
        (admin.change_role(ctx, "alice@acme.test", "acme", "readonly"), "role-changed"),
        (admin.remove_membership(ctx, "alice@acme.test", "globex", "readonly"), None),
    ]
    held = []
    for step, _ in steps:
        await signed_in(ctx.engine, "alice@acme.test")
        result = await step
        assert not isinstance(result, AdminError), result
        assert await live_sessions(ctx.engine, "alice@acme.test") == 0
        held.append(list(result.memberships))
    assert held == [
        [Membership("acme", "standard"), Membership("globex", "readonly")],
        [Membership("globex", "readonly"), Membership("acme", "readonly")],
        [Membership("acme", "readonly")],
    ]
    (removed,) = await events(ctx.engine, "membership-removed")
    assert removed["before"]["memberships"] == ["readonly@globex", "readonly@acme"]
    assert removed["after"]["memberships"] == ["readonly@acme"]
    assert len(await events(ctx.engine, "session-revoked")) == 3


async def test_removing_what_is_not_held_is_a_clear_error(ctx: AdminContext) -> None:
    await admin.add_user(ctx, "alice@acme.test", [Membership("acme", "standard")])
    refused = await admin.remove_membership(ctx, "alice@acme.test", "acme", "admin")
    assert isinstance(refused, AdminError)
    assert refused.message == ("alice@acme.test does not hold admin in acme (holds: standard@acme)")
    missing = await admin.set_user_active(ctx, "nobody@acme.test", False)
    assert isinstance(missing, AdminError) and missing.code == "not-found"


async def test_a_tenant_admin_manages_only_their_tenant(ctx: AdminContext) -> None:
    await admin.add_user(ctx, "bob@globex.test", [Membership("globex", "standard")])
    await admin.create_api_key(ctx, tenant="globex", role="readonly", label="", ttl=60)
    ctx.actor = Admin("carol@acme.test", tenants=frozenset({"acme"}))
    refusals = [
        await admin.add_user(ctx, "x@acme.test", [Membership("globex", "admin")]),
        await admin.add_user(ctx, "x@acme.test", [Membership("*", "operator")]),
        await admin.add_user(ctx, "x@acme.test", [Membership("acme", "admin")], superadmin=True),
        await admin.create_api_key(ctx, tenant="globex", role="admin", label="", ttl=60),
        await admin.revoke_api_key(ctx, 1),
        await admin.set_user_active(ctx, "bob@globex.test", False),
        await admin.add_membership(ctx, "bob@globex.test", "acme", "admin"),
        await admin.create_tenant(ctx, "initech"),
        await admin.deactivate_tenant(ctx, "globex"),
        await admin.rename_tenant(ctx, "globex", "Mine"),
    ]
    assert all(isinstance(r, AdminError) for r in refusals), refusals
    assert await admin.list_users(ctx) == []
    assert await admin.list_api_keys(ctx) == []
    assert [t.id for t in await admin.list_tenants(ctx)] == ["acme"]
    added = await admin.add_user(ctx, "x@acme.test", [Membership("acme", "readonly")])
    assert not isinstance(added, AdminError)


class Outbox:
    """Collects the invitations a context hands to its mail hook (SMTP is covered by
    ``tests/integration/test_invite.py``)."""

    def __init__(self) -> None:
        self.sent: list[Invitation] = []

    async def __call__(self, invitation: Invitation) -> bool:
        self.sent.append(invitation)
        return True  # delivered at once


@pytest.mark.parametrize(
    ("grants", "valid_for", "problem"),
    [
        ([], 3600.0, "at least one membership"),
        ([Membership("acme", "boss")], 3600.0, "unknown role 'boss'"),
        ([Membership("initech", "standard")], 3600.0, "no tenant 'initech'"),
        ([Membership("acme", "standard")], 0.0, "positive time"),
        ([Membership("acme", "standard")], 15 * 86400.0, "at most 14 days"),
    ],
    ids=["no grant", "an unknown role", "an unknown tenant", "no time", "too long"],
)
async def test_a_bad_invite_stores_and_mails_nothing(
    ctx: AdminContext, grants: list[Membership], valid_for: float, problem: str
) -> None:
    ctx.send_invite = outbox = Outbox()
    refused = await invites.invite_user(ctx, "dora@acme.test", grants, valid_for=valid_for)
    assert isinstance(refused, AdminError) and problem in refused.message
    assert outbox.sent == []
    assert await user_store.get_user_by_email(ctx.engine, "dora@acme.test") is None
    assert await events(ctx.engine, "user-invited") == []


async def test_without_a_mail_hook_nobody_is_invited(ctx: AdminContext) -> None:
    refused = await invites.invite_user(ctx, "dora@acme.test", [Membership("acme", "standard")])
    assert isinstance(refused, AdminError) and "cannot send mail" in refused.message
    assert await user_store.get_user_by_email(ctx.engine, "dora@acme.test") is None


async def test_inviting_someone_who_signed_in_adds_the_grant_and_keeps_them_active(
    ctx: AdminContext,
) -> None:
    ctx.send_invite = outbox = Outbox()
    await admin.add_user(ctx, "alice@acme.test", [Membership("acme", "standard")])
    user = await user_store.get_user_by_email(ctx.engine, "alice@acme.test")
    assert user is not None
    await session_store.create_session(
        ctx.engine,
        user_id=user.id,
        auth_method="magic-link",
        idle_timeout=3600,
        absolute_timeout=86400,
        auth_time=time.time(),
        now=time.time(),
        client_ip="127.0.0.1",
        user_agent="tests",
        signs_in=True,
    )
    again = await invites.invite_user(
        ctx, "alice@acme.test", [Membership("globex", "readonly")], inviter="Dana"
    )
    assert not isinstance(again, AdminError), again
    assert again.state == "active" and again.invited_at is None
    assert again.memberships == (Membership("acme", "standard"), Membership("globex", "readonly"))
    assert await live_sessions(ctx.engine, "alice@acme.test") == 0, "her access changed"
    (sent,) = outbox.sent
    assert (sent.email, sent.inviter, sent.tenants) == ("alice@acme.test", "Dana", ("globex",))
    (event,) = await events(ctx.engine, "user-invited")
    assert event["tenant"] == "globex" and event["actor"] == "cli"
    assert (event["before"]["state"], event["after"]["state"]) == ("active", "active")
