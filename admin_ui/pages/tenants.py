"""Tenants: the list, creating one (superadmins), one tenant's members and API keys,
and deactivating a tenant after a confirm step (a ``<details>`` holding the real
button: no script, no ``confirm()``).

Every change goes through ``gateway.admin.service``, which refuses a tenant admin
anything outside their tenants and audits what changed.
"""

from __future__ import annotations

from aiohttp import web

from admin_ui.pages.people_shown import shown, tenant_path
from admin_ui.view import Page, View
from gateway.admin import service
from gateway.admin.service import AdminError


async def tenants_list(view: View) -> web.StreamResponse:
    return await _list_page(view, typed={"id": "", "name": ""})


async def _list_page(
    view: View, *, typed: dict[str, str], error: AdminError | None = None
) -> web.StreamResponse:
    tenants = await service.list_tenants(view.ctx)
    members: dict[str, int] = {}
    for user in await service.list_users(view.ctx):
        for tenant in {m.tenant for m in user.memberships}:
            members[tenant] = members.get(tenant, 0) + 1
    return view.page(
        "tenants_list.html",
        status=error.status if error is not None else 200,
        title="Tenants",
        tenants=tenants,
        members=members,
        typed=typed,
        error=error,
        **shown(view.ctx),
    )


async def create(view: View) -> web.StreamResponse:
    form = await view.form()
    typed = {"id": form.get("id", "").strip(), "name": form.get("name", "").strip()}
    created = await service.create_tenant(view.ctx, typed["id"], typed["name"])
    if isinstance(created, AdminError):
        return await _list_page(view, typed=typed, error=created)
    return view.see_other(tenant_path(created.id), notice=f"Tenant {created.id} created.")


def _tenant_id(view: View) -> str:
    return view.request.match_info["tenant"]


async def tenant(view: View) -> web.StreamResponse:
    return await _tenant_page(view, _tenant_id(view))


async def _tenant_page(
    view: View, tenant_id: str, *, error: AdminError | None = None
) -> web.StreamResponse:
    row = await service.get_tenant(view.ctx, tenant_id)
    if isinstance(row, AdminError):
        return view.refused(row, title="Not found")
    members = await service.tenant_members(view.ctx, tenant_id)
    if isinstance(members, AdminError):
        return view.refused(members, title="Not found")
    now = view.ctx.clock()
    keys = [k for k in await service.list_api_keys(view.ctx) if k.tenant == tenant_id]
    return view.page(
        "tenants_tenant.html",
        status=error.status if error is not None else 200,
        title=row.display_name,
        tenant=row,
        members=members,
        keys=sorted(keys, key=lambda k: (not k.live(now), -k.created_at)),
        now=now,
        error=error,
        **shown(view.ctx),
    )


async def deactivate(view: View) -> web.StreamResponse:
    tenant_id = _tenant_id(view)
    ended = await service.deactivate_tenant(view.ctx, tenant_id)
    if isinstance(ended, AdminError):
        return await _tenant_page(view, tenant_id, error=ended)
    notice = f"Tenant {tenant_id} deactivated; {ended} session(s) ended."
    return view.see_other(tenant_path(tenant_id), notice=notice)


async def revoke_key(view: View) -> web.StreamResponse:
    """Revoke one of this tenant's API keys (another tenant's key id is not found)."""
    tenant_id = _tenant_id(view)
    key_id = view.request.match_info["key_id"]
    mine = [k.id for k in await service.list_api_keys(view.ctx) if k.tenant == tenant_id]
    result: object = AdminError(f"no live API key {key_id} in {tenant_id}", "not-found")
    if key_id.isdigit() and int(key_id) in mine:
        result = await service.revoke_api_key(view.ctx, int(key_id))
    if isinstance(result, AdminError):
        return await _tenant_page(view, tenant_id, error=result)
    return view.see_other(tenant_path(tenant_id), notice=f"API key {key_id} revoked.")


PAGES = (
    Page("GET", "/tenants", tenants_list),
    Page("POST", "/tenants", create),
    Page("GET", "/tenants/{tenant}", tenant),
    Page("POST", "/tenants/{tenant}/deactivate", deactivate),
    Page("POST", "/tenants/{tenant}/api-keys/{key_id}/revoke", revoke_key),
)
