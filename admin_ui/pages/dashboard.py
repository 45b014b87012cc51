"""The dashboard: the last 24 hours at a glance."""

from __future__ import annotations

from aiohttp import web

from admin_ui.view import Page, View


async def dashboard(view: View) -> web.StreamResponse:
    return view.page("dashboard.html", title="Dashboard")


PAGES = (Page("GET", "/", dashboard),)
