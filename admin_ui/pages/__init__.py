"""The UI's pages, one module per section; each lists its routes in ``PAGES``."""

from __future__ import annotations

from admin_ui.pages import (
    access,
    audit,
    dashboard,
    reviews,
    rule_versions,
    rules,
    rules_shadow,
    shares,
    tenants,
    users,
)

ALL_PAGES = (
    dashboard.PAGES,
    users.PAGES,
    tenants.PAGES,
    rules.PAGES,
    rule_versions.PAGES,
    rules_shadow.PAGES,
    audit.PAGES,
    access.PAGES,
    reviews.PAGES,
    shares.PAGES,
)
