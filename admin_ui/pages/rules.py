"""The rules page: the version in force, an editor that checks a draft line by line and
stores it as a new version, and simulation of one request under any version.

Every step is the admin service's (``gateway/admin/rules.py`` and ``rules_drafts.py``):
with ``rules.managed_by: file`` the page only reads and the service refuses each change
with its conflict; a tenant admin reads no rules text and simulates only as the people
and keys of their tenants.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin_ui.pages.rules_parts import (
    Simulation,
    SimulationAsk,
    answer_simulation,
    diff_lines,
    form_text,
    no_such_version,
    numbered,
    simulate,
    simulate_form_context,
    stamp,
    version_id,
)
from admin_ui.view import Page, View
from gateway.admin import rules as lifecycle
from gateway.admin import rules_drafts
from gateway.admin.service import AdminError
from gateway.store.rule_versions import VersionRow

REFUSED_OUTRIGHT = frozenset({"forbidden", "not-found", "conflict"})
"""Codes that end a change (who may, what exists, who manages the rules); any other
refusal is about the text and is shown beside it."""


@dataclass(frozen=True, slots=True)
class Draft:
    """The editor's text and, once checked, what was found."""

    text: str
    comment: str = ""
    checked: bool = False
    problems: tuple[tuple[int | None, str], ...] = ()
    diff: str = ""
    listed: bool = True
    """Whether to show the text with line numbers (not for a text refused as too long)."""


async def rules_page(view: View) -> web.StreamResponse:
    """The active version, the editor (from ``?from=<version>``) and simulation."""
    start = view.query("from")
    if not start:
        return await _page(view)
    found = version_id(start)
    row = no_such_version(start) if found is None else await lifecycle.get_version(view.ctx, found)
    if isinstance(row, AdminError):
        return view.refused(row)
    return await _page(view, draft=Draft(row.yaml))


async def check(view: View) -> web.StreamResponse:
    """Every problem of the draft under its line, and its changes against the active one."""
    form = await view.form()
    text, comment = form_text(form.get("yaml", "")), form.get("comment", "")
    found = await rules_drafts.check_draft(view.ctx, text)
    if isinstance(found, AdminError) and found.code in REFUSED_OUTRIGHT:
        return view.refused(found)
    problems = _problems(found)
    draft = await _checked(view, text, comment, problems, whole=_readable(found))
    return await _page(view, draft=draft, status=422 if problems else 200)


async def save(view: View) -> web.StreamResponse:
    """Store the draft as a new, inactive version, then show that version."""
    form = await view.form()
    text, comment = form_text(form.get("yaml", "")), form.get("comment", "")
    made = (
        rules_drafts.draft_problem(text)
        or rules_drafts.comment_problem(comment)
        or await lifecycle.propose_version(view.ctx, text, comment, source="draft")
    )
    if isinstance(made, VersionRow):
        notice = (
            f"Saved as version {made.id}, not active yet: simulate it, preview its impact, "
            "then activate it."
        )
        return view.see_other(f"/rules/versions/{made.id}", notice=notice)
    if isinstance(made, AdminError) and made.code in REFUSED_OUTRIGHT:
        return view.refused(made)
    draft = await _checked(view, text, comment, _problems(made), whole=_readable(made))
    return await _page(view, draft=draft, status=422)


async def simulate_request(view: View) -> web.StreamResponse:
    """Decide one request as a person or key under a version: the htmx result panel, or
    the whole page without JavaScript."""
    ask = SimulationAsk.of(await view.form())
    simulation = await simulate(view, ask)
    if view.htmx:
        return answer_simulation(view, simulation)
    return await _page(view, simulation=simulation, status=simulation.status)


def _problems(
    found: lifecycle.RuleProblems | AdminError | None,
) -> tuple[tuple[int | None, str], ...]:
    if found is None:
        return ()
    if isinstance(found, lifecycle.RuleProblems):
        return tuple((p.line, p.message) for p in found.problems)
    return found.problems or ((None, found.message),)


def _readable(found: lifecycle.RuleProblems | AdminError | None) -> bool:
    """Whether the text was read at all (a refusal without lines: too long)."""
    return not isinstance(found, AdminError) or bool(found.problems)


async def _checked(
    view: View,
    text: str,
    comment: str,
    problems: tuple[tuple[int | None, str], ...],
    *,
    whole: bool,
) -> Draft:
    """The draft after a check; ``whole`` is false for a text refused before reading
    (too long): it is neither listed nor compared."""
    diff = await rules_drafts.diff_draft(view.ctx, text) if whole else ""
    return Draft(
        text,
        comment,
        checked=True,
        problems=problems,
        diff="" if isinstance(diff, AdminError) else diff,
        listed=whole,
    )


async def _page(
    view: View,
    *,
    draft: Draft | None = None,
    simulation: Simulation | None = None,
    status: int = 200,
) -> web.Response:
    active = await rules_drafts.active_rules(view.ctx)
    if isinstance(active, AdminError):
        return view.refused(active)
    locked = rules_drafts.editing_refusal(view.ctx)
    superadmin = view.admin.superadmin
    if draft is None and superadmin:
        draft = Draft(active.version.yaml if active else "")
    listing, problems = numbered(draft.text if draft else "", draft.problems if draft else ())
    return view.page(
        "rules.html",
        status=status,
        title="Rules",
        active=active,
        locked=locked,
        draft=draft if superadmin else None,
        listing=listing if draft and draft.listed else [],
        problems=problems,
        diff=diff_lines(draft.diff) if draft else [],
        pending=await _pending(view, active.version.id if active else None),
        simulation=simulation,
        ask=simulation.ask if simulation else SimulationAsk(),
        stamp=stamp,
        **await simulate_form_context(view),
    )


async def _pending(view: View, active: int | None) -> list[VersionRow]:
    """Versions stored after the active one and never activated: drafts to review."""
    rows = await lifecycle.list_versions(view.ctx, limit=20)
    if isinstance(rows, AdminError):
        return []
    return [r for r in rows if r.activated_at is None and (active is None or r.id > active)]


PAGES = (
    Page("GET", "/rules", rules_page),
    Page("POST", "/rules/check", check),
    Page("POST", "/rules/drafts", save),
    Page("POST", "/rules/simulate", simulate_request),
)
