"""The UI's pages, one module per section; each lists its routes in ``PAGES``."""

from __future__ import annotations

from admin_ui.pages import dashboard, rule_versions, rules

ALL_PAGES = (dashboard.PAGES, rules.PAGES, rule_versions.PAGES)
