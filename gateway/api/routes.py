"""The admin API as mounted by ``app.py``: every endpoint module, one ``AdminApi``.

Adding an endpoint: a decorated function in one of these modules (or a new module
listed here); it is served, audited and documented with no other change.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from gateway.admin.parts import ServiceParts
from gateway.api import (
    access,
    audit_trail,
    keys,
    people,
    registry,
    rule_versions,
    shadow,
    shares,
    simulate,
    tenants,
)
from gateway.api.openapi import openapi_document
from gateway.api.operations import API, Api
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
    shadow,
)


def admin_api(csrf: CsrfTokens, parts: ServiceParts) -> AdminApi:
    """The admin API over every endpoint module's operations."""
    return AdminApi(API, csrf, _document(API, len(API.operations)), parts)


@functools.lru_cache(maxsize=4)
def _document(api: Api, declared: int) -> Mapping[str, Any]:
    """The OpenAPI document of ``api`` with its first ``declared`` operations, made once.

    Generating the models' JSON Schema takes a third of a second, and every app (each
    worker, each replica, each reload) would otherwise repeat it for the same table.
    Operations are only ever appended, so an operation declared later changes the key
    and gets a new document. Callers only read it (``AdminApi`` serializes it).
    """
    return openapi_document(api)
