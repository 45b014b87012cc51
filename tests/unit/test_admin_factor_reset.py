"""Resetting a person's second factors, on both backends: every second factor goes, the
password and everybody else's factors stay, sessions end, begun sign-ins are dropped,
it is audited, and a tenant admin reaches only people wholly in their tenants."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import factors
from gateway.admin import service as admin
from gateway.admin.factors import FactorsReset
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.model import Membership
from gateway.store import pending_sign_ins as pending_store
from gateway.store import sessions as session_store
from gateway.store import tables
from gateway.store import users as user_store
from gateway.store.factors import Factors, factors_of
from tests.support.factors import enrol, user_id

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")
ROLES = frozenset({"readonly", "standard", "admin"})
ALICE, BOB, MIXED = "alice@acme.test", "bob@globex.test", "mixed@acme.test"
CAROL = Admin("carol@acme.test", tenants=frozenset({"acme"}))


@pytest.fixture
async def ctx(engine: AsyncEngine) -> AsyncIterator[AdminContext]:
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    context = AdminContext(engine, writer, admin.CLI_ADMIN, ROLES)
    for tenant in ("acme", "globex"):
        assert not isinstance(await admin.create_tenant(context, tenant), AdminError)
    await user_store.add_user(engine, ALICE, memberships=[Membership("acme", "standard")])
    await user_store.add_user(engine, BOB, memberships=[Membership("globex", "standard")])
    await user_store.add_user(
        engine,
        MIXED,
        memberships=[Membership("acme", "standard"), Membership("globex", "readonly")],
    )
    try:
        yield context
    finally:
        await writer.close()


def as_admin(ctx: AdminContext, actor: Admin) -> AdminContext:
    return AdminContext(ctx.engine, ctx.audit, actor, ROLES)


async def events(engine: AsyncEngine, kind: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT actor, data FROM audit_log WHERE kind = :k ORDER BY seq"), {"k": kind}
        )
        return [{"actor": actor, **json.loads(data)} for actor, data in rows]


async def signed_in(engine: AsyncEngine, email: str) -> None:
    now = time.time()
    await session_store.create_session(
        engine,
        user_id=await user_id(engine, email),
        auth_method="magic-link",
        idle_timeout=3600,
        absolute_timeout=86400,
        auth_time=now,
        now=now,
        client_ip="127.0.0.1",
        user_agent="tests",
    )


async def live_sessions(engine: AsyncEngine, email: str) -> int:
    rows = await session_store.list_user_sessions(engine, await user_id(engine, email))
    return sum(1 for row in rows if session_store.session_is_live(row, time.time()))


async def pending(engine: AsyncEngine, email: str) -> str:
    return await pending_store.create_pending(
        engine,
        user_id=await user_id(engine, email),
        method="magic-link",
        purpose=pending_store.SIGN_IN,
        rd="/",
        details={},
        now=time.time(),
        ttl=600,
    )


async def test_every_second_factor_goes_and_the_password_stays(
    ctx: AdminContext, engine: AsyncEngine
) -> None:
    await enrol(engine, ALICE, codes=3, passkeys=2, password=True)
    await enrol(engine, BOB, codes=1)
    alice = await user_id(engine, ALICE)
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.webauthn_challenges).values(
                challenge_hash="c" * 64, user_id=alice, purpose="register", expires_at=time.time()
            )
        )
    await signed_in(engine, ALICE)
    await signed_in(engine, ALICE)
    await signed_in(engine, BOB)
    token = await pending(engine, ALICE)

    done = await factors.reset_second_factors(ctx, ALICE.upper())
    assert done == FactorsReset(
        ALICE, Factors(password=True, totp=True, recovery_codes_left=3, passkeys=2), 2, 1
    )
    assert await factors_of(engine, alice) == Factors(password=True)
    assert await live_sessions(engine, ALICE) == 0
    assert await pending_store.get_pending(engine, token, time.time()) is None
    async with engine.connect() as conn:
        left = await conn.execute(text("SELECT count(*) FROM webauthn_challenges"))
        assert left.scalar_one() == 0
    # Nobody else is touched.
    bob = await factors_of(engine, await user_id(engine, BOB))
    assert bob.totp and bob.recovery_codes_left == 1
    assert await live_sessions(engine, BOB) == 1

    (event,) = await events(engine, "factors-reset")
    assert event["actor"] == "cli" and event["subject"] == ALICE
    assert event["before"] == {
        "password": True,
        "totp": True,
        "recovery_codes_left": 3,
        "passkeys": 2,
    }
    assert event["after"] == {
        "password": True,
        "totp": False,
        "recovery_codes_left": 0,
        "passkeys": 0,
    }
    assert (event["sessions"], event["pending_sign_ins"]) == (2, 1)


async def test_a_person_without_factors_is_reset_all_the_same(
    ctx: AdminContext, engine: AsyncEngine
) -> None:
    await signed_in(engine, ALICE)
    done = await factors.reset_second_factors(ctx, ALICE)
    assert isinstance(done, FactorsReset) and done.removed == Factors() and done.sessions == 1
    assert len(await events(engine, "factors-reset")) == 1


async def test_a_tenant_admin_resets_only_people_wholly_in_their_tenants(
    ctx: AdminContext, engine: AsyncEngine
) -> None:
    for email in (ALICE, BOB, MIXED):
        await enrol(engine, email)
    carol = as_admin(ctx, CAROL)

    foreign = await factors.reset_second_factors(carol, BOB)
    assert isinstance(foreign, AdminError) and foreign.code == "not-found"
    assert foreign.message == f"no user {BOB!r}", "the same answer as for nobody"
    mixed = await factors.reset_second_factors(carol, MIXED)
    assert isinstance(mixed, AdminError) and mixed.code == "forbidden"
    for email in (BOB, MIXED):
        assert (await factors_of(engine, await user_id(engine, email))).totp
    assert await events(engine, "factors-reset") == []

    own = await factors.reset_second_factors(carol, ALICE)
    assert isinstance(own, FactorsReset) and own.removed.totp
    (event,) = await events(engine, "factors-reset")
    assert (event["actor"], event["subject"]) == ("carol@acme.test", ALICE)


async def test_a_tenant_admin_cannot_reset_a_superadmin(
    ctx: AdminContext, engine: AsyncEngine
) -> None:
    await user_store.add_user(
        engine, "root@acme.test", memberships=[Membership("acme", "admin")], superadmin=True
    )
    await enrol(engine, "root@acme.test")
    refused = await factors.reset_second_factors(as_admin(ctx, CAROL), "root@acme.test")
    assert isinstance(refused, AdminError) and refused.code == "forbidden"


async def test_a_malformed_or_unknown_address_is_refused(ctx: AdminContext) -> None:
    bad = await factors.reset_second_factors(ctx, "not an address")
    assert isinstance(bad, AdminError) and bad.code == "invalid"
    unknown = await factors.reset_second_factors(ctx, "nobody@acme.test")
    assert isinstance(unknown, AdminError) and unknown.code == "not-found"


async def test_what_a_person_has_enrolled_is_shown_only_to_their_admins(
    ctx: AdminContext, engine: AsyncEngine
) -> None:
    await enrol(engine, ALICE, passkeys=1)
    shown = await factors.factors_of_person(as_admin(ctx, CAROL), ALICE)
    assert shown == Factors(totp=True, passkeys=1)
    hidden = await factors.factors_of_person(as_admin(ctx, CAROL), BOB)
    assert isinstance(hidden, AdminError) and hidden.code == "not-found"
