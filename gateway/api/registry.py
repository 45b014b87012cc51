"""``/registry``: the ownership registry (object → owning tenant) for registry resources."""

from __future__ import annotations

from gateway.admin import registry
from gateway.admin.registry import OwnerChange
from gateway.admin.service import AdminError
from gateway.api.models import (
    OwnerMove,
    RegistryChange,
    RegistryEntry,
    RegistryImport,
    RegistryImported,
)
from gateway.api.operations import API, Call, Empty


def _change(change: OwnerChange) -> RegistryChange:
    return RegistryChange(
        resource_type=change.resource_type,
        object_id=change.object_id,
        before=change.before,
        after=change.after,
    )


@API.get("/registry/{resource_type}/{object_id}", response=RegistryEntry, errors=(404,))
async def read_owner(call: Call[Empty, Empty]) -> RegistryEntry | AdminError:
    """The recorded owner of one object of a tenant the caller administers."""
    row = await registry.show_owner(call.ctx, call.path["resource_type"], call.path["object_id"])
    if isinstance(row, AdminError):
        return row
    return RegistryEntry(
        resource_type=row.resource_type, object_id=row.object_id, tenant=row.tenant
    )


@API.put(
    "/registry/{resource_type}/{object_id}", body=OwnerMove, response=RegistryChange, errors=(404,)
)
async def set_owner(call: Call[OwnerMove, Empty]) -> RegistryChange | AdminError:
    """Record an object's owner, or move it to another tenant (every replica within a second)."""
    path = call.path
    change = await registry.set_owner(
        call.ctx, path["resource_type"], path["object_id"], call.body.tenant
    )
    return change if isinstance(change, AdminError) else _change(change)


@API.delete("/registry/{resource_type}/{object_id}", response=RegistryChange, errors=(404,))
async def remove_owner(call: Call[Empty, Empty]) -> RegistryChange | AdminError:
    """Forget an object's owner: requests naming it are refused from then on."""
    path = call.path
    change = await registry.remove_owner(call.ctx, path["resource_type"], path["object_id"])
    return change if isinstance(change, AdminError) else _change(change)


@API.post("/registry/import", body=RegistryImport, response=RegistryImported)
async def import_owners(call: Call[RegistryImport, Empty]) -> RegistryImported | AdminError:
    """Import a registry CSV, all or nothing; every problem is listed with its line."""
    changes = await registry.import_csv(call.ctx, call.body.csv.splitlines())
    if isinstance(changes, AdminError):
        return changes
    return RegistryImported(changes=[_change(change) for change in changes])
