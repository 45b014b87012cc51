"""Shadow mode: the version in shadow, its differences grouped by route and reason,
and the buttons to start it (on a version's page), stop it, and activate it when clean.

All over ``gateway/admin/shadow.py``: only a superadmin sees or changes anything here;
others get the service's refusal.
"""

from __future__ import annotations

from aiohttp import web

from admin_ui.pages.rules_parts import no_such_version, stamp, version_id
from admin_ui.view import Page, View
from gateway.admin import shadow as shadow_admin
from gateway.admin.service import AdminError
from gateway.admin.shadow import ShadowReport
from gateway.store.shadow_runs import GroupKey

COMMENT_MAX = 1000


async def shadow_page(view: View) -> web.StreamResponse:
    """The shadow run (running, else the latest) and its differences; htmx refreshes
    the report part alone."""
    report = await shadow_admin.shadow_report(view.ctx)
    if isinstance(report, AdminError) and report.code != "not-found":
        return view.refused(report)
    found = report if isinstance(report, ShadowReport) else None
    if view.htmx:
        return view.fragment(
            "rules_shadow_report.html", report=found, stamp=stamp, judgement=judgement
        )
    return view.page(
        "rules_shadow.html", title="Rules in shadow", report=found, stamp=stamp, judgement=judgement
    )


async def start(view: View) -> web.StreamResponse:
    """Run this version in shadow beside the active one."""
    text = view.request.match_info["version"]
    found = version_id(text)
    if found is None:
        return view.refused(no_such_version(text))
    comment = (await view.form()).get("comment", "")
    started = _comment_problem(comment) or await shadow_admin.start_shadow(view.ctx, found, comment)
    if isinstance(started, AdminError):
        return view.refused(started)
    return view.see_other("/rules/shadow", notice=f"Rules version {found} runs in shadow.")


async def stop(view: View) -> web.StreamResponse:
    comment = (await view.form()).get("comment", "")
    stopped = _comment_problem(comment) or await shadow_admin.stop_shadow(view.ctx, comment)
    if isinstance(stopped, AdminError):
        return view.refused(stopped)
    return view.see_other(
        "/rules/shadow", notice=f"Shadow run of rules version {stopped.version_id} stopped."
    )


async def activate(view: View) -> web.StreamResponse:
    """Activate the version in shadow: refused by the service unless the report is clean."""
    comment = (await view.form()).get("comment", "")
    done = _comment_problem(comment) or await shadow_admin.activate_shadow(
        view.ctx, comment=comment
    )
    if isinstance(done, AdminError):
        return view.refused(done)
    return view.see_other(
        "/rules", notice=f"Rules version {done.run.version_id} is active now (from shadow)."
    )


def judgement(key: GroupKey, side: str) -> str:
    """``ALLOW role-allowed`` for one side of a difference group."""
    if side == "live":
        return f"{key.live_decision.upper()} {key.live_reason}"
    return f"{key.shadow_decision.upper()} {key.shadow_reason}"


def _comment_problem(comment: str) -> AdminError | None:
    if len(comment) > COMMENT_MAX:
        return AdminError(f"keep the comment under {COMMENT_MAX} characters")
    return None


PAGES = (
    Page("GET", "/rules/shadow", shadow_page),
    Page("POST", "/rules/versions/{version}/shadow", start),
    Page("POST", "/rules/shadow/stop", stop),
    Page("POST", "/rules/shadow/activate", activate),
)
