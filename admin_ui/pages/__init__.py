"""The UI's pages, one module per section; each lists its routes in ``PAGES``."""

from __future__ import annotations

from admin_ui.pages import audit, dashboard

ALL_PAGES = (dashboard.PAGES, audit.PAGES)
