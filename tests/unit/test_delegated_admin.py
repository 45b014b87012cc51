"""Delegated administration: the acting ``Admin`` is built from a signed-in person.

Over a real SQLite store, audit writer and the demo rules: the demo's acme admin
(``carol@acme.test``, admin in acme only) manages acme and cannot list, read, change,
invite, grant into or make keys for globex; a superadmin manages everything; a key, a
token, a global grant or a role without ``manage_users`` administers nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import service as admin
from gateway.admin.actors import acting_admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.config.loader import load_rules
from gateway.demo.run import seed_gateway
from gateway.model import AuthMethod, Membership, Principal, RoleDef
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from tests.support.stack import DEMO_RULES

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")
ROLES: dict[str, RoleDef] = dict(
    load_rules(
        DEMO_RULES, env={"LEDGER_URL": "http://127.0.0.1:9", "LEDGER_DB_DSN": "sqlite:///x"}
    ).roles
)


@pytest.fixture
async def ctx(engine: AsyncEngine) -> AsyncIterator[AdminContext]:
    await seed_gateway(engine)
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    try:
        yield AdminContext(engine, writer, admin.CLI_ADMIN, frozenset(ROLES))
    finally:
        await writer.close()


async def signed_in(
    ctx: AdminContext, email: str, method: AuthMethod = AuthMethod.MAGIC_LINK
) -> Principal:
    """The principal a session of ``email`` carries (as the session manager loads it)."""
    user = await user_store.get_user_by_email(ctx.engine, email)
    assert user is not None
    return Principal(
        user_id=str(user.id),
        email=user.email,
        memberships=user.memberships,
        auth_method=method,
        auth_time=time.time(),
        superadmin=user.superadmin,
    )


async def acting(ctx: AdminContext, email: str) -> Admin:
    actor = acting_admin(await signed_in(ctx, email), ROLES)
    assert isinstance(actor, Admin), actor
    return actor


async def test_a_superadmin_manages_everything(ctx: AdminContext) -> None:
    actor = await acting(ctx, "admin@example.test")
    assert actor == Admin("admin@example.test", superadmin=True)


async def test_a_role_with_manage_users_makes_an_admin_of_that_tenant_only(
    ctx: AdminContext,
) -> None:
    assert await acting(ctx, "carol@acme.test") == Admin(
        "carol@acme.test", tenants=frozenset({"acme"})
    )


@pytest.mark.parametrize(
    ("email", "method"),
    [
        ("alice@acme.test", AuthMethod.SESSION),  # standard: no manage_users
        ("rita@acme.test", AuthMethod.SESSION),
        ("olga@example.test", AuthMethod.SESSION),  # a global grant is no admin of all
        ("carol@acme.test", AuthMethod.API_KEY),  # systems never administer
        ("carol@acme.test", AuthMethod.BEARER_JWT),
        ("admin@example.test", AuthMethod.NONE),
    ],
)
async def test_others_administer_nothing(ctx: AdminContext, email: str, method: AuthMethod) -> None:
    refused = acting_admin(await signed_in(ctx, email, method), ROLES)
    assert isinstance(refused, AdminError) and refused.code == "forbidden"


async def test_a_role_the_rules_no_longer_define_grants_nothing(ctx: AdminContext) -> None:
    carol = await signed_in(ctx, "carol@acme.test")
    assert isinstance(
        acting_admin(carol, {k: v for k, v in ROLES.items() if k != "admin"}), AdminError
    )
    global_admin = Principal(
        user_id="9",
        email="g@example.test",
        memberships=(Membership("*", "admin"),),
        auth_method=AuthMethod.SESSION,
        auth_time=time.time(),
    )
    assert isinstance(acting_admin(global_admin, ROLES), AdminError)


async def test_the_acme_admin_cannot_reach_into_globex(ctx: AdminContext) -> None:
    globex_key = await admin.create_api_key(ctx, tenant="globex", role="readonly", label="", ttl=60)
    assert not isinstance(globex_key, AdminError)
    bob = await user_store.get_user_by_email(ctx.engine, "bob@globex.test")
    assert bob is not None
    await session_store.create_session(
        ctx.engine,
        user_id=bob.id,
        auth_method="magic-link",
        auth_time=time.time(),
        idle_timeout=3600,
        absolute_timeout=3600,
        client_ip="127.0.0.1",
        user_agent="tests",
        active_tenant="globex",
        now=time.time(),
    )
    before = await user_store.get_user_by_email(ctx.engine, "bob@globex.test")
    ctx.actor = await acting(ctx, "carol@acme.test")

    # list: nothing of globex
    assert {u.email for u in await admin.list_users(ctx)} == {
        "admin@example.test",
        "carol@acme.test",
        "alice@acme.test",
        "rita@acme.test",
    }
    assert await admin.list_api_keys(ctx) == []
    assert [t.id for t in await admin.list_tenants(ctx)] == ["acme"]

    refusals = {
        "read": await admin.list_sessions(ctx, "bob@globex.test"),
        "end sessions": await admin.end_user_sessions(ctx, "bob@globex.test"),
        "deactivate": await admin.set_user_active(ctx, "bob@globex.test", False),
        "change role": await admin.change_role(ctx, "bob@globex.test", "globex", "readonly"),
        "ungrant": await admin.remove_membership(ctx, "bob@globex.test", "globex", "standard"),
        "grant into globex": await admin.add_user(
            ctx, "alice@acme.test", [Membership("globex", "admin")]
        ),
        "grant a globex person": await admin.add_membership(
            ctx, "bob@globex.test", "acme", "admin"
        ),
        "add into globex": await admin.add_user(
            ctx, "new@globex.test", [Membership("globex", "standard")]
        ),
        "invite": await admin.invite_sso(ctx, bob, provider="corp", ttl=60),
        "key for globex": await admin.create_api_key(
            ctx, tenant="globex", role="admin", label="", ttl=60
        ),
        "revoke globex key": await admin.revoke_api_key(ctx, globex_key[0]),
        "rename globex": await admin.rename_tenant(ctx, "globex", "Mine"),
        "deactivate globex": await admin.deactivate_tenant(ctx, "globex"),
        "make a superadmin": await admin.add_user(
            ctx, "x@acme.test", [Membership("acme", "readonly")], superadmin=True
        ),
        "global grant": await admin.add_user(ctx, "x@acme.test", [Membership("*", "operator")]),
        "the superadmin": await admin.set_user_active(ctx, "admin@example.test", False),
    }
    allowed = {what: r for what, r in refusals.items() if not isinstance(r, AdminError)}
    assert not allowed, allowed

    # globex is as it was: bob, his session, the key
    assert await user_store.get_user_by_email(ctx.engine, "bob@globex.test") == before
    assert len(await session_store.list_user_sessions(ctx.engine, bob.id)) == 1
    ctx.actor = admin.CLI_ADMIN
    assert [k.id for k in await admin.list_api_keys(ctx) if k.revoked_at is None] == [globex_key[0]]
    assert await user_store.get_user_by_email(ctx.engine, "new@globex.test") is None


async def test_the_acme_admin_manages_acme(ctx: AdminContext) -> None:
    ctx.actor = await acting(ctx, "carol@acme.test")
    changed = await admin.change_role(ctx, "alice@acme.test", "acme", "readonly")
    assert not isinstance(changed, AdminError), changed
    added = await admin.add_user(ctx, "dan@acme.test", [Membership("acme", "standard")])
    assert not isinstance(added, AdminError), added
    key = await admin.create_api_key(ctx, tenant="acme", role="readonly", label="", ttl=60)
    assert not isinstance(key, AdminError), key
    assert not isinstance(await admin.list_sessions(ctx, "alice@acme.test"), AdminError)
    assert not isinstance(await admin.end_user_sessions(ctx, "alice@acme.test"), AdminError)
