"""The admin API as mounted by ``app.py``: every endpoint module, one ``AdminApi``.

Adding an endpoint: a decorated function in one of these modules (or a new module
listed here); it is served, audited and documented with no other change.
"""

from __future__ import annotations

from gateway.admin.parts import ServiceParts
from gateway.api import (
    access,
    audit_trail,
    keys,
    people,
    registry,
    rule_versions,
    shares,
    simulate,
    tenants,
)
from gateway.api.openapi import openapi_document
from gateway.api.operations import API
from gateway.api.serve import AdminApi
from gateway.auth.keys import CsrfTokens

ENDPOINT_MODULES = (
    people,
    tenants,
    keys,
    simulate,
    rule_versions,
    access,
    audit_trail,
    registry,
    shares,
)


def admin_api(csrf: CsrfTokens, parts: ServiceParts) -> AdminApi:
    """The admin API over every endpoint module's operations."""
    return AdminApi(API, csrf, openapi_document(API), parts)
