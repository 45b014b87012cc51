"""The rules lifecycle service over a real SQLite store and audit writer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import rules as lifecycle
from gateway.admin import service as admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.config.settings import Settings
from gateway.model import Membership
from gateway.store import rule_versions as version_store
from gateway.store.rule_versions import VersionRow

KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")

V1 = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  viewer: {can: [read]}
  editor: {can: [read, write], scope: tenant}
routes:
  - name: reports
    match: {path: /api/reports, methods: [GET]}
    upstream: app
    action: read
  - name: report-write
    match: {path: /api/reports, methods: [POST]}
    upstream: app
    action: write
"""
V2 = V1.replace("viewer: {can: [read]}", "viewer: {can: [list]}")
BROKEN = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9", timeout: soon}
roles:
  viewer: {can: [read], scope: planet}
routes:
  - name: reports
    match: {path: /api/reports, methods: [GET]}
    upstream: nowhere
"""


def settings_for(tmp_path: Path, managed_by: str) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(V1)
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "base_dir": str(tmp_path),
            "rules": {"path": str(rules), "managed_by": managed_by},
        }
    )


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncEngine, AuditWriter]]:
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    try:
        yield engine, writer
    finally:
        await writer.close()


def context(
    store: tuple[AsyncEngine, AuditWriter], settings: Settings, actor: Admin = admin.CLI_ADMIN
) -> AdminContext:
    engine, writer = store
    return AdminContext(engine, writer, actor, frozenset({"viewer", "editor"}), settings=settings)


@pytest.fixture
async def ctx(
    store: tuple[AsyncEngine, AuditWriter], tmp_path: Path
) -> AsyncIterator[AdminContext]:
    context_ = context(store, settings_for(tmp_path, "admin"))
    for tenant in ("acme", "globex"):
        assert not isinstance(await admin.create_tenant(context_, tenant), AdminError)
    await admin.add_user(context_, "vera@acme.test", [Membership("acme", "viewer")])
    await admin.add_user(context_, "gus@globex.test", [Membership("globex", "viewer")])
    yield context_


async def events(engine: AsyncEngine, kind: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT actor, data FROM audit_log WHERE kind = :k ORDER BY seq"), {"k": kind}
        )
        return [{"actor": a, **json.loads(d)} for a, d in rows]


async def proposed(ctx: AdminContext, yaml_text: str, comment: str = "") -> VersionRow:
    version = await lifecycle.propose_version(ctx, yaml_text, comment)
    assert isinstance(version, VersionRow), version
    return version


async def test_file_mode_refuses_every_change_with_a_conflict(
    store: tuple[AsyncEngine, AuditWriter], tmp_path: Path
) -> None:
    ctx = context(store, settings_for(tmp_path, "file"))
    refused = await lifecycle.propose_version(ctx, V2, "narrow")
    assert isinstance(refused, AdminError) and refused.code == "conflict"
    assert "managed by the file" in refused.message
    seeded = await version_store.seed(ctx.engine, V1, author="file", comment="", now=1.0)
    assert seeded is not None
    other = await version_store.add_version(ctx.engine, V2, author="x", comment="", now=2.0)
    activation = await lifecycle.activate_version(ctx, other.id)
    assert isinstance(activation, AdminError) and activation.code == "conflict"
    rollback = await lifecycle.rollback_version(ctx, seeded.version.id)
    assert isinstance(rollback, AdminError)
    assert await version_store.active_id(ctx.engine) == seeded.version.id
    assert [v.id for v in await version_store.list_versions(ctx.engine)] == [
        other.id,
        seeded.version.id,
    ]
    await ctx.audit.settled()
    assert await events(ctx.engine, "rules-activated") == []
    assert await events(ctx.engine, "rules-proposed") == []


async def test_an_invalid_proposal_reports_every_problem_with_its_line(ctx: AdminContext) -> None:
    result = await lifecycle.propose_version(ctx, BROKEN, "oops")
    assert isinstance(result, lifecycle.RuleProblems)
    found = [(p.line, p.message.split(":")[0]) for p in result.problems]
    assert found == [
        (5, "roles.viewer.scope"),
        (3, "upstreams.app.timeout"),
        (9, "routes[0].upstream"),
    ]
    assert await version_store.list_versions(ctx.engine) == []


async def test_a_proposal_is_stored_inactive_and_audited(ctx: AdminContext) -> None:
    version = await proposed(ctx, V1, "  first  ")
    assert (version.author, version.comment, version.activated_at) == ("cli", "first", None)
    assert version.source_hash == version_store.source_hash(V1)
    assert await lifecycle.active_version_id(ctx) is None
    await ctx.audit.settled()
    (event,) = await events(ctx.engine, "rules-proposed")
    assert event["actor"] == "cli" and event["version"] == version.id
    assert event["before"] is None and event["after"]["digest"] == version.source_hash


async def test_diff_between_any_two_versions(ctx: AdminContext) -> None:
    one, two = await proposed(ctx, V1), await proposed(ctx, V2)
    diff = await lifecycle.diff_versions(ctx, one.id, two.id)
    assert isinstance(diff, str)
    assert diff.splitlines()[:2] == [f"--- version {one.id}", f"+++ version {two.id}"]
    assert "-  viewer: {can: [read]}" in diff.splitlines()
    assert "+  viewer: {can: [list]}" in diff.splitlines()
    assert await lifecycle.diff_versions(ctx, one.id, one.id) == ""
    missing = await lifecycle.diff_versions(ctx, one.id, 99)
    assert isinstance(missing, AdminError) and missing.code == "not-found"


async def test_activation_and_rollback_are_audited_with_before_and_after(
    ctx: AdminContext,
) -> None:
    one, two = await proposed(ctx, V1), await proposed(ctx, V2)
    assert not isinstance(await lifecycle.activate_version(ctx, one.id, "go live"), AdminError)
    assert not isinstance(await lifecycle.activate_version(ctx, two.id, "narrow"), AdminError)
    again = await lifecycle.activate_version(ctx, two.id)
    assert isinstance(again, AdminError) and "active version already" in again.message
    newer = await lifecycle.rollback_version(ctx, two.id)
    assert isinstance(newer, AdminError) and "not older" in newer.message
    rolled = await lifecycle.rollback_version(ctx, one.id, "viewers lost reports")
    assert isinstance(rolled, VersionRow) and rolled.id == one.id
    assert await lifecycle.active_version_id(ctx) == one.id
    await ctx.audit.settled()
    activated = await events(ctx.engine, "rules-activated")
    assert [(e["before"], e["after"], e["rollback"], e["comment"]) for e in activated] == [
        ({"version": None}, {"version": one.id}, False, "go live"),
        ({"version": one.id}, {"version": two.id}, False, "narrow"),
        ({"version": two.id}, {"version": one.id}, True, "viewers lost reports"),
    ]
    assert {e["actor"] for e in activated} == {"cli"}
    assert activated[-1]["digest"] == one.source_hash


async def test_a_version_that_does_not_compile_here_is_not_activated(ctx: AdminContext) -> None:
    one = await proposed(ctx, V1)
    await lifecycle.activate_version(ctx, one.id)
    env_bound = V1.replace("http://127.0.0.1:9", "${REPORTS_URL}")
    stored = await version_store.add_version(
        ctx.engine, env_bound, author="cli", comment="", now=1.0
    )
    refused = await lifecycle.activate_version(ctx, stored.id)
    assert isinstance(refused, AdminError) and "REPORTS_URL" in refused.message
    assert await lifecycle.active_version_id(ctx) == one.id
    missing = await lifecycle.activate_version(ctx, 404)
    assert isinstance(missing, AdminError) and missing.code == "not-found"


async def test_simulate_against_the_active_version_or_a_draft(ctx: AdminContext) -> None:
    one, two = await proposed(ctx, V1), await proposed(ctx, V2)
    await lifecycle.activate_version(ctx, one.id)
    active = await lifecycle.simulate(ctx, None, "vera@acme.test", "GET", "/api/reports")
    draft = await lifecycle.simulate(ctx, two.id, "vera@acme.test", "GET", "/api/reports")
    assert not isinstance(active, AdminError) and not isinstance(draft, AdminError)
    assert active.decision.allowed and active.decision.reason == "role-allowed"
    assert not draft.decision.allowed and draft.decision.reason == "role-forbidden"
    anonymous = await lifecycle.simulate(ctx, None, None, "GET", "/api/reports")
    assert not isinstance(anonymous, AdminError) and anonymous.decision.reason == "auth-required"
    nobody = await lifecycle.simulate(ctx, None, "nobody@acme.test", "GET", "/api/reports")
    assert isinstance(nobody, AdminError) and nobody.code == "not-found"
    no_version = await lifecycle.simulate(ctx, 77, "vera@acme.test", "GET", "/api/reports")
    assert isinstance(no_version, AdminError) and no_version.code == "not-found"


async def test_a_tenant_admin_reads_the_list_and_simulates_only_in_their_tenant(
    ctx: AdminContext,
) -> None:
    one = await proposed(ctx, V1)
    await lifecycle.activate_version(ctx, one.id)
    acme_admin = AdminContext(
        ctx.engine,
        ctx.audit,
        Admin("ann@acme.test", tenants=frozenset({"acme"})),
        ctx.roles,
        settings=ctx.settings,
    )
    listed = await lifecycle.list_versions(acme_admin)
    assert isinstance(listed, list) and [v.id for v in listed] == [one.id]
    assert listed[0].yaml == "" and listed[0].source_hash == one.source_hash
    for refused in (
        await lifecycle.propose_version(acme_admin, V2),
        await lifecycle.activate_version(acme_admin, one.id),
        await lifecycle.get_version(acme_admin, one.id),
        await lifecycle.diff_versions(acme_admin, one.id, one.id),
        await lifecycle.impact_preview(acme_admin, one.id, 10),
    ):
        assert isinstance(refused, AdminError) and refused.code == "forbidden", refused
    own = await lifecycle.simulate(acme_admin, None, "vera@acme.test", "GET", "/api/reports")
    assert not isinstance(own, AdminError) and own.decision.allowed
    foreign = await lifecycle.simulate(acme_admin, None, "gus@globex.test", "GET", "/api/reports")
    assert isinstance(foreign, AdminError) and foreign.code == "not-found"
    assert await version_store.list_versions(ctx.engine) == [
        await version_store.get_version(ctx.engine, one.id)
    ]


async def test_impact_preview_needs_an_active_version_and_a_sane_count(ctx: AdminContext) -> None:
    one = await proposed(ctx, V1)
    nothing = await lifecycle.impact_preview(ctx, one.id, 10)
    assert isinstance(nothing, AdminError) and "no version is active" in nothing.message
    await lifecycle.activate_version(ctx, one.id)
    for count in (0, -1, lifecycle.MAX_REPLAY + 1):
        bad = await lifecycle.impact_preview(ctx, one.id, count)
        assert isinstance(bad, AdminError) and bad.code == "invalid"
    empty = await lifecycle.impact_preview(ctx, one.id, 10)
    assert isinstance(empty, lifecycle.ImpactPreview)
    assert (empty.replayed, empty.changes, empty.skipped) == (0, (), ())
