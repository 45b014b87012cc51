"""Administering the ownership registry: who may, what is checked, what is audited."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.admin import registry
from gateway.admin import service as admin
from gateway.admin.registry import OwnerChange
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.config.settings import Settings
from gateway.store import registry as registry_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.support.stack import DEMO_RULES
from tests.unit.test_admin_service import KEY, ROLES, events

ACME_ADMIN = Admin("ada@acme.test", tenants=frozenset({"acme"}))
BOTH_ADMIN = Admin("bo@both.test", tenants=frozenset({"acme", "globex"}))


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[AdminContext]:
    """The CLI's context over a SQLite store, the demo rules active (``report``: registry)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    await migrate(engine)
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    settings = Settings.model_validate({"data_dir": str(tmp_path), "rules": str(DEMO_RULES)})
    context = AdminContext(engine, writer, admin.CLI_ADMIN, ROLES, settings=settings)
    for tenant in ("acme", "globex", "initech"):
        assert not isinstance(await admin.create_tenant(context, tenant), AdminError)
    try:
        yield context
    finally:
        await writer.close()
        await engine.dispose()


def acting(ctx: AdminContext, actor: Admin) -> AdminContext:
    return dataclasses.replace(ctx, actor=actor)


async def test_a_superadmin_sets_moves_shows_and_removes_an_owner_each_audited(
    ctx: AdminContext,
) -> None:
    set_ = await registry.set_owner(ctx, "report", "r-1", "acme")
    assert set_ == OwnerChange("report", "r-1", None, "acme")
    moved = await registry.set_owner(ctx, "report", "r-1", "globex")
    assert moved == OwnerChange("report", "r-1", "acme", "globex")
    again = await registry.set_owner(ctx, "report", "r-1", "globex")
    assert isinstance(again, OwnerChange) and not again.changed
    shown = await registry.show_owner(ctx, "report", "r-1")
    assert not isinstance(shown, AdminError) and shown.tenant == "globex"
    removed = await registry.remove_owner(ctx, "report", "r-1")
    assert removed == OwnerChange("report", "r-1", "globex", None)
    assert await registry_store.get_owner(ctx.engine, "report", "r-1") is None

    audited = await events(ctx.engine, "registry-owner-set")
    assert [(e["actor"], e["tenant"], e["before"], e["after"]) for e in audited] == [
        ("cli", "acme", None, {"tenant": "acme"}),
        ("cli", "globex", {"tenant": "acme"}, {"tenant": "globex"}),
    ]  # the unchanged set wrote nothing
    (gone,) = await events(ctx.engine, "registry-owner-removed")
    assert (gone["object_id"], gone["before"], gone["after"]) == ("r-1", {"tenant": "globex"}, None)


async def test_bad_input_is_refused_with_a_clear_error_and_nothing_written(
    ctx: AdminContext,
) -> None:
    refusals = {
        ("invoice", "1", "acme"): "not read from the registry",  # an HTTP-resolved type
        ("nosuch", "1", "acme"): "registry types: report",
        ("report", "has space", "acme"): "is not a report id (slug)",
        ("report", "", "acme"): "printable characters",
        ("report", "r-2", "*"): "one tenant, not '*'",
        ("report", "r-2", "umbrella"): "no tenant 'umbrella'",
    }
    for (kind, oid, tenant), says in refusals.items():
        refused = await registry.set_owner(ctx, kind, oid, tenant)
        assert isinstance(refused, AdminError), (kind, oid, tenant)
        assert says in refused.message and refused.status in (404, 422), refused
    assert await events(ctx.engine, "registry-owner-set") == []
    missing = await registry.remove_owner(ctx, "report", "r-404")
    assert isinstance(missing, AdminError) and missing.status == 404


async def test_a_tenant_admin_handles_only_objects_of_their_tenants(ctx: AdminContext) -> None:
    await registry.set_owner(ctx, "report", "r-acme", "acme")
    await registry.set_owner(ctx, "report", "r-globex", "globex")
    ada = acting(ctx, ACME_ADMIN)
    # Another tenant's object: not shown, not moved, not removed.
    hidden = await registry.show_owner(ada, "report", "r-globex")
    assert isinstance(hidden, AdminError) and hidden.status == 404
    for attempt in (
        registry.set_owner(ada, "report", "r-globex", "acme"),
        registry.remove_owner(ada, "report", "r-globex"),
    ):
        refused = await attempt
        assert isinstance(refused, AdminError) and refused.status == 403
    # Their own object cannot be handed to a tenant they do not administer.
    handed = await registry.set_owner(ada, "report", "r-acme", "globex")
    assert isinstance(handed, AdminError) and handed.status == 403
    assert await registry_store.get_owner(ctx.engine, "report", "r-acme") == "acme"
    assert await registry_store.get_owner(ctx.engine, "report", "r-globex") == "globex"
    # Between two tenants they administer, it moves.
    moved = await registry.set_owner(acting(ctx, BOTH_ADMIN), "report", "r-acme", "globex")
    assert moved == OwnerChange("report", "r-acme", "acme", "globex")
    (event,) = [e for e in await events(ctx.engine, "registry-owner-set") if e["before"]]
    assert event["actor"] == "bo@both.test"


async def test_an_import_is_all_or_nothing_and_lists_every_problem_by_line(
    ctx: AdminContext,
) -> None:
    await registry.set_owner(ctx, "report", "r-globex", "globex")
    ada = acting(ctx, ACME_ADMIN)
    lines = [
        "resource_type,object_id,tenant",
        "report,r-1,acme",
        "",
        "report,r-2,globex",  # a tenant ada does not administer
        "report,r-globex,acme",  # another tenant's object
        "invoice,7,acme",  # not a registry type
        "report,r-1,acme",  # twice
    ]
    refused = await registry.import_csv(ada, lines)
    assert isinstance(refused, AdminError)
    assert [line for line, _ in refused.problems] == [4, 5, 6, 7]
    assert await registry_store.get_owner(ctx.engine, "report", "r-1") is None
    malformed = await registry.import_csv(ada, ["type,id", "report,r-1,acme"])
    assert isinstance(malformed, AdminError) and "header" in malformed.problems[0][1]

    changes = await registry.import_csv(
        ada, ["resource_type,object_id,tenant", "report,r-1,acme", "report,r-3,acme"]
    )
    assert changes == [
        OwnerChange("report", "r-1", None, "acme"),
        OwnerChange("report", "r-3", None, "acme"),
    ]
    unchanged = await registry.import_csv(
        ada, ["resource_type,object_id,tenant", "report,r-1,acme"]
    )
    assert unchanged == []
    imported = await events(ctx.engine, "registry-imported")
    assert [(e["actor"], e["rows"], len(e["changes"])) for e in imported] == [
        ("ada@acme.test", 2, 2),
        ("ada@acme.test", 1, 0),
    ]
    assert imported[0]["changes"][0]["after"] == {"tenant": "acme"}
