"""Rules history: every version, one version with its diff, impact preview, simulation,
activation and rollback.

All over ``gateway/admin/rules.py``: a tenant admin sees the list without texts and is
refused the rest by the service; with ``rules.managed_by: file`` activation and
rollback are refused with the service's conflict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from admin_ui.pages.rules_parts import (
    SimulationAsk,
    diff_lines,
    no_such_version,
    numbered,
    simulate_form_context,
    stamp,
    version_id,
)
from admin_ui.view import Page, View
from gateway.admin import rules as lifecycle
from gateway.admin import rules_drafts
from gateway.admin.rules import ImpactPreview
from gateway.admin.service import AdminContext, AdminError
from gateway.store.rule_versions import VersionRow

DEFAULT_REPLAY = 200
VersionChange = Callable[[AdminContext, int, str], Awaitable[VersionRow | AdminError]]
"""``activate_version`` or ``rollback_version``."""


async def history(view: View) -> web.StreamResponse:
    """Every version, newest first, with what can be done to each."""
    rows = await lifecycle.list_versions(view.ctx, limit=200)
    if isinstance(rows, AdminError):
        return view.refused(rows)
    return view.page(
        "rules_versions.html",
        title="Rules history",
        rows=rows,
        active=await lifecycle.active_version_id(view.ctx),
        locked=rules_drafts.editing_refusal(view.ctx),
        stamp=stamp,
    )


async def version_page(view: View) -> web.StreamResponse:
    """One version: its text, its changes against the active one, and what to do next."""
    row = await _version(view)
    if isinstance(row, AdminError):
        return view.refused(row)
    return await _version_view(view, row)


async def version_diff(view: View) -> web.StreamResponse:
    """The diff to a version from ``?against=`` (by default the active version)."""
    row = await _version(view)
    if isinstance(row, AdminError):
        return view.refused(row)
    against = view.query("against")
    old = version_id(against) if against else await lifecycle.active_version_id(view.ctx)
    if old is None:
        return view.refused(no_such_version(against or "active"))
    diff = await lifecycle.diff_versions(view.ctx, old, row.id)
    if isinstance(diff, AdminError):
        return view.refused(diff)
    return view.page(
        "rules_version_diff.html",
        title=f"Rules version {old} to {row.id}",
        row=row,
        old=old,
        diff=diff_lines(diff),
    )


async def impact(view: View) -> web.StreamResponse:
    """Replay recent audited requests against this version: the decisions that change."""
    row = await _version(view)
    if isinstance(row, AdminError):
        return view.refused(row)
    form = await view.form()
    last = form.get("last", str(DEFAULT_REPLAY)).strip()
    preview: ImpactPreview | AdminError
    if last.isascii() and last.isdigit() and len(last) < 7:
        preview = await lifecycle.impact_preview(view.ctx, row.id, int(last))
    else:
        preview = AdminError(f"replay a whole number of requests, not {last[:20]!r}")
    status = preview.status if isinstance(preview, AdminError) else 200
    if view.htmx:
        return view.fragment(
            "rules_impact.html", status=status, preview=preview, last=last, stamp=stamp
        )
    return await _version_view(view, row, preview=preview, last=last, status=status)


async def activate(view: View) -> web.StreamResponse:
    """Make this version the one every gateway runs (newer than the active one)."""
    return await _change(view, lifecycle.activate_version, "is active now")


async def rollback(view: View) -> web.StreamResponse:
    """Make this older version the active one again."""
    return await _change(view, lifecycle.rollback_version, "is active again (rolled back)")


async def _change(view: View, workflow: VersionChange, done: str) -> web.StreamResponse:
    found = version_id(view.request.match_info["version"])
    if found is None:
        return view.refused(no_such_version(view.request.match_info["version"]))
    comment = (await view.form()).get("comment", "")
    changed = rules_drafts.comment_problem(comment) or await workflow(view.ctx, found, comment)
    if isinstance(changed, AdminError):
        return view.refused(changed)
    return view.see_other("/rules", notice=f"Rules version {changed.id} {done}.")


async def _version(view: View) -> VersionRow | AdminError:
    text = view.request.match_info["version"]
    found = version_id(text)
    if found is None:
        return no_such_version(text)
    return await lifecycle.get_version(view.ctx, found)


async def _version_view(
    view: View,
    row: VersionRow,
    *,
    preview: ImpactPreview | AdminError | None = None,
    last: str = str(DEFAULT_REPLAY),
    status: int = 200,
) -> web.Response:
    active = await lifecycle.active_version_id(view.ctx)
    diff = (
        "" if active in (None, row.id) else await lifecycle.diff_versions(view.ctx, active, row.id)
    )
    listing, _ = numbered(row.yaml)
    return view.page(
        "rules_version.html",
        status=status,
        title=f"Rules version {row.id}",
        row=row,
        active=active,
        locked=rules_drafts.editing_refusal(view.ctx),
        listing=listing,
        diff=diff_lines(diff) if isinstance(diff, str) else [],
        preview=preview,
        last=last,
        ask=SimulationAsk(version=str(row.id)),
        simulation=None,
        stamp=stamp,
        **await simulate_form_context(view),
    )


PAGES = (
    Page("GET", "/rules/versions", history),
    Page("GET", "/rules/versions/{version}", version_page),
    Page("GET", "/rules/versions/{version}/diff", version_diff),
    Page("POST", "/rules/versions/{version}/impact", impact),
    Page("POST", "/rules/versions/{version}/activate", activate),
    Page("POST", "/rules/versions/{version}/rollback", rollback),
)
