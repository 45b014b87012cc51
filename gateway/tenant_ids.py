"""What a tenant id looks like: one definition for the admin service and the policy."""

from __future__ import annotations

import re

TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
"""A tenant id is a slug: it appears in rules, audit rows, headers and URLs."""


def is_tenant_id(value: str) -> bool:
    """Whether ``value`` is spelled as a tenant id (lower-case letters, digits, ``-``).

    A path that names a tenant otherwise (``T3``, ``t3 ``, ``té3``) names no tenant
    anyone can be in, and would reach the app as another spelling of a real one: HTTP
    strips the space from ``X-Gatehold-Tenant``, a case-insensitive database matches
    ``T3`` to ``t3``.
    """
    return TENANT_ID.fullmatch(value) is not None
