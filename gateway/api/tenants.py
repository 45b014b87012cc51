"""``/tenants``: create, read, rename and deactivate tenants."""

from __future__ import annotations

from gateway.admin import service
from gateway.admin.service import AdminError
from gateway.api.models import Ended, NewTenant, Tenant, TenantChange, Tenants
from gateway.api.operations import API, Call, Empty


@API.get("/tenants", response=Tenants)
async def list_tenants(call: Call[Empty, Empty]) -> Tenants:
    """The tenants the caller administers."""
    return Tenants(items=[Tenant.of(row) for row in await service.list_tenants(call.ctx)])


@API.post("/tenants", body=NewTenant, response=Tenant, status=201, errors=(409,))
async def create_tenant(call: Call[NewTenant, Empty]) -> Tenant | AdminError:
    """Create a tenant (superadmins only)."""
    row = await service.create_tenant(call.ctx, call.body.id, call.body.display_name)
    return row if isinstance(row, AdminError) else Tenant.of(row)


@API.get("/tenants/{tenant}", response=Tenant, errors=(404,))
async def read_tenant(call: Call[Empty, Empty]) -> Tenant | AdminError:
    """One tenant the caller administers."""
    row = await service.get_tenant(call.ctx, call.path["tenant"])
    return row if isinstance(row, AdminError) else Tenant.of(row)


@API.patch("/tenants/{tenant}", body=TenantChange, response=Tenant, errors=(404,))
async def rename_tenant(call: Call[TenantChange, Empty]) -> Tenant | AdminError:
    """Change a tenant's display name."""
    row = await service.rename_tenant(call.ctx, call.path["tenant"], call.body.display_name)
    return row if isinstance(row, AdminError) else Tenant.of(row)


@API.post("/tenants/{tenant}/deactivate", response=Ended, errors=(404, 409))
async def deactivate_tenant(call: Call[Empty, Empty]) -> Ended | AdminError:
    """Deactivate a tenant (superadmins only): its members' sessions end, its keys stop."""
    ended = await service.deactivate_tenant(call.ctx, call.path["tenant"])
    return ended if isinstance(ended, AdminError) else Ended(sessions=ended)
