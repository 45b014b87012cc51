"""How the Users and Tenants pages show people: addresses of their pages, times, and
which grants an admin may offer (the service still decides every grant)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from gateway.admin.service import AdminContext
from gateway.ingress import SEGMENT_SAFE
from gateway.model import GLOBAL_TENANT, Membership
from gateway.store.tenants import TenantRow
from gateway.store.users import UserRow

NEVER = "never"


def person_path(email: str) -> str:
    """The person's page below the UI's prefix, the address percent-encoded exactly as
    the gateway's canonical form has it (any other spelling of a path is refused)."""
    return "/users/" + quote(email, safe=SEGMENT_SAFE)


def tenant_path(tenant_id: str) -> str:
    return "/tenants/" + quote(tenant_id, safe=SEGMENT_SAFE)


def when(seconds: float | None) -> str:
    """A Unix time as UTC to the minute (``never`` for none)."""
    if seconds is None:
        return NEVER
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def offered_roles(ctx: AdminContext) -> list[str]:
    """The roles to offer in a grant form: a tenant admin is not offered the roles that
    reach every tenant (the service refuses those grants anyway, with a message)."""
    if ctx.actor.superadmin:
        return sorted(ctx.roles)
    return sorted(ctx.roles - ctx.global_roles)


def offered_tenants(ctx: AdminContext, tenants: list[TenantRow]) -> list[tuple[str, str]]:
    """(id, label) of the tenants to offer in a grant form: the active ones the admin
    administers, and every tenant (``*``) for a superadmin."""
    offered = [(row.id, f"{row.display_name} ({row.id})") for row in tenants if row.active]
    if ctx.actor.superadmin:
        offered.append((GLOBAL_TENANT, "every tenant (*)"))
    return offered


def shown(ctx: AdminContext) -> dict[str, Any]:
    """What every template of these pages gets: addresses, times, and ``grants(user)``,
    the person's memberships in the tenants the admin administers (a tenant admin does
    not learn what someone holds elsewhere, nor that those tenants exist)."""

    def grants(user: UserRow) -> list[Membership]:
        return [m for m in user.memberships if ctx.actor.manages(m.tenant)]

    return {"person_path": person_path, "tenant_path": tenant_path, "when": when, "grants": grants}
