"""Who acts in the admin service when a signed-in person does (delegated administration).

A superadmin administers everything. Anyone else administers exactly the tenants in
which they hold a role that allows the ``manage_users`` action; a grant in every tenant
(``*``) makes nobody an admin of all tenants (that is what the superadmin flag is for).
Credentials of systems (API keys, bearer tokens) never administer: an admin is a person.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.admin.service import Admin, AdminError
from gateway.model import GLOBAL_TENANT, AuthMethod, Principal, RoleDef

MANAGE_USERS = "manage_users"
"""The action that makes a role an admin role in its tenant."""

SYSTEM_CREDENTIALS = frozenset({AuthMethod.API_KEY, AuthMethod.BEARER_JWT, AuthMethod.NONE})


def acting_admin(principal: Principal, roles: Mapping[str, RoleDef]) -> Admin | AdminError:
    """The ``Admin`` a signed-in ``principal`` acts as, or why they may administer nothing.

    ``roles`` are the active rules' roles; a role the rules no longer define grants nothing.
    """
    if principal.auth_method in SYSTEM_CREDENTIALS:
        return AdminError("only a signed-in person administers, not a key or token", "forbidden")
    if principal.superadmin:
        return Admin(principal.email, superadmin=True)
    tenants = frozenset(
        grant.tenant
        for grant in principal.memberships
        if grant.tenant != GLOBAL_TENANT
        and grant.role in roles
        and MANAGE_USERS in roles[grant.role].can
    )
    if not tenants:
        return AdminError(f"{principal.email} administers no tenant", "forbidden")
    return Admin(principal.email, tenants=tenants)
