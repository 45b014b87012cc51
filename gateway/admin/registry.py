"""The ownership registry, administered: show, set (move), remove, import a CSV.

Who may: a superadmin, any object; a tenant admin, only objects owned by a tenant they
administer, moved only to another tenant they administer (so nobody hands an object to,
or takes one from, a tenant they do not administer). A type must be one the active
rules read from the registry, an id must be of that type's ``id_type``. Each change is
audited with the owner before and after; the store notifies every replica, which
evicts the owner it cached (``registry_sync.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway import idtypes
from gateway.active_rules import active_ruleset
from gateway.admin.service import AdminContext, AdminError, usable_tenant
from gateway.errors import ConfigError
from gateway.model import GLOBAL_TENANT, RegistryOwner
from gateway.store import registry as registry_store
from gateway.store.registry import CsvImportError, OwnerRow

MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class OwnerChange:
    """One object's owner before and after an admin action (``None``: not registered)."""

    resource_type: str
    object_id: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def audited(self) -> dict[str, object]:
        return {
            "resource_type": self.resource_type,
            "object_id": self.object_id,
            "before": None if self.before is None else {"tenant": self.before},
            "after": None if self.after is None else {"tenant": self.after},
        }


async def registry_types(ctx: AdminContext) -> Mapping[str, str] | None:
    """The resource types the active rules read from the registry, with their id types;
    ``None`` when the context has no settings to find the rules with (nothing checked)."""
    if ctx.settings is None:
        return None
    env = {**os.environ, **ctx.settings.rules_env}
    try:
        ruleset = await active_ruleset(ctx.engine, ctx.settings, env)
    except ConfigError:
        return {}
    return {
        name: resource.id_type
        for name, resource in ruleset.resources.items()
        if isinstance(resource.owner, RegistryOwner)
    }


def _object_problem(
    types: Mapping[str, str] | None, resource_type: str, object_id: str
) -> str | None:
    if types is not None and resource_type not in types:
        known = ", ".join(sorted(types)) or "none"
        return (
            f"resource type {resource_type[:100]!r} is not read from the registry by the active "
            f"rules (registry types: {known})"
        )
    if not object_id or len(object_id) > MAX_ID_LENGTH or not object_id.isprintable():
        return f"object id {object_id[:40]!r}: 1 to {MAX_ID_LENGTH} printable characters"
    if types is not None and not idtypes.check(object_id, types[resource_type]):
        return f"object id {object_id!r} is not a {resource_type} id ({types[resource_type]})"
    return None


def _foreign(ctx: AdminContext, resource_type: str, object_id: str) -> AdminError:
    return AdminError(
        f"{resource_type} {object_id} belongs to a tenant {ctx.actor.name} does not administer",
        "forbidden",
    )


async def show_owner(
    ctx: AdminContext, resource_type: str, object_id: str
) -> OwnerRow | AdminError:
    """The recorded owner; an object of a tenant the actor does not administer is not shown."""
    tenant = await registry_store.get_owner(ctx.engine, resource_type, object_id)
    if tenant is None or not ctx.actor.manages(tenant):
        return AdminError(f"no owner of {resource_type} {object_id} is recorded", "not-found")
    return OwnerRow(resource_type, object_id, tenant)


async def set_owner(
    ctx: AdminContext, resource_type: str, object_id: str, tenant: str
) -> OwnerChange | AdminError:
    """Record the owner of an object, or move it to ``tenant``."""
    problem = _object_problem(await registry_types(ctx), resource_type, object_id)
    if problem is not None:
        return AdminError(problem)
    if tenant == GLOBAL_TENANT:
        return AdminError("an object is owned by one tenant, not '*'")
    unusable = await usable_tenant(ctx, tenant)
    if unusable is not None:
        return unusable
    before = await registry_store.get_owner(ctx.engine, resource_type, object_id)
    if before is not None and not ctx.actor.manages(before):
        return _foreign(ctx, resource_type, object_id)
    change = OwnerChange(resource_type, object_id, before, tenant)
    if change.changed:
        await registry_store.set_owner(ctx.engine, resource_type, object_id, tenant)
        await ctx.audit_event("registry-owner-set", tenant=tenant, **change.audited())
    return change


async def remove_owner(
    ctx: AdminContext, resource_type: str, object_id: str
) -> OwnerChange | AdminError:
    """Forget an object's owner: the gateway then refuses every request naming it."""
    before = await registry_store.get_owner(ctx.engine, resource_type, object_id)
    if before is None:
        return AdminError(f"no owner of {resource_type} {object_id} is recorded", "not-found")
    if not ctx.actor.manages(before):
        return _foreign(ctx, resource_type, object_id)
    if not await registry_store.remove_owner(ctx.engine, resource_type, object_id):
        return AdminError(f"no owner of {resource_type} {object_id} is recorded", "not-found")
    change = OwnerChange(resource_type, object_id, before, None)
    await ctx.audit_event("registry-owner-removed", tenant=before, **change.audited())
    return change


async def import_csv(ctx: AdminContext, lines: Iterable[str]) -> list[OwnerChange] | AdminError:
    """Import a ``resource_type,object_id,tenant`` CSV, all or nothing; returns the changes.

    Every problem (bad line, unknown type, bad id, unusable tenant, an object of a tenant
    the actor does not administer) is reported at once, with its line.
    """
    try:
        rows = registry_store.numbered_rows(lines)
    except CsvImportError as error:
        listed = "; ".join(error.problems[:5])
        return AdminError(
            f"the CSV has problems: {listed}", problems=tuple((None, p) for p in error.problems)
        )
    types = await registry_types(ctx)
    problems: list[tuple[int | None, str]] = []
    tenants: dict[str, AdminError | None] = {}
    changes: list[OwnerChange] = []
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        found = await _row_problem(ctx, types, tenants, row)
        if found is None and (row.resource_type, row.object_id) in seen:
            found = "the object appears twice"
        seen.add((row.resource_type, row.object_id))
        if found is not None:
            problems.append((line, found))
            continue
        before = await registry_store.get_owner(ctx.engine, row.resource_type, row.object_id)
        if before is not None and not ctx.actor.manages(before):
            problems.append((line, _foreign(ctx, row.resource_type, row.object_id).message))
            continue
        changes.append(OwnerChange(row.resource_type, row.object_id, before, row.tenant))
    if problems:
        listed = "; ".join(f"line {line}: {message}" for line, message in problems[:5])
        return AdminError(f"the CSV has problems: {listed}", problems=tuple(problems))
    changed = [change for change in changes if change.changed]
    written = [OwnerRow(c.resource_type, c.object_id, c.after or "") for c in changed]
    await registry_store.set_owners(ctx.engine, written)
    await ctx.audit_event(
        "registry-imported",
        rows=len(rows),
        changes=[change.audited() for change in changed],
    )
    return changed


async def _row_problem(
    ctx: AdminContext,
    types: Mapping[str, str] | None,
    tenants: dict[str, AdminError | None],
    row: OwnerRow,
) -> str | None:
    problem = _object_problem(types, row.resource_type, row.object_id)
    if problem is not None:
        return problem
    if row.tenant == GLOBAL_TENANT:
        return "an object is owned by one tenant, not '*'"
    if row.tenant not in tenants:
        tenants[row.tenant] = await usable_tenant(ctx, row.tenant)
    unusable = tenants[row.tenant]
    return None if unusable is None else unusable.message
