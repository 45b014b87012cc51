"""Rules texts before they are stored, and the version in force: what an editor needs.

``check_draft`` finds every problem of a text exactly as ``propose_version`` would, and
stores nothing; ``diff_draft`` compares a text with the active version; ``active_rules``
says which version runs, who activated it, when and why (the comment of its latest
activation, from the audit trail). The lifecycle's rules of who may do what apply: only
a superadmin reads or checks rules texts, and with ``rules.managed_by: file`` checking
a text for storing is refused with the same ``conflict`` as storing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.rules import (
    RuleProblems,
    _editable,
    _superadmin,
    _without_text,
    rules_env,
)
from gateway.admin.service import AdminContext, AdminError
from gateway.config import yamlsource
from gateway.config.loader import check_rules_text
from gateway.store import audit_log
from gateway.store import rule_versions as version_store
from gateway.store.audit_log import AuditFilter
from gateway.store.rule_versions import VersionRow

MAX_DRAFT_CHARS = 1_000_000
"""The longest rules text accepted (as the JSON API's ``yaml`` field)."""
MAX_COMMENT_CHARS = 1000
"""The longest comment on a version or an activation (as the JSON API's)."""


@dataclass(frozen=True, slots=True)
class ActiveRules:
    """The version every gateway process runs and its latest activation."""

    version: VersionRow
    """Without its text for a tenant admin (as ``list_versions`` gives it)."""
    activated_by: str
    activated_at: float
    comment: str
    """Why it was activated (the version's own comment if the trail does not say)."""


def draft_problem(text: str) -> AdminError | None:
    """Refuse a text no rules file can be: too long, or holding a NUL character."""
    if len(text) > MAX_DRAFT_CHARS:
        return AdminError(
            f"the rules text has {len(text):,} characters; at most {MAX_DRAFT_CHARS:,} are "
            "accepted — split long lists or remove what is unused"
        )
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return AdminError(
            f"line {line} holds a NUL character, which YAML does not allow — remove it",
            problems=((line, "a NUL character (U+0000) — remove it"),),
        )
    return None


async def check_draft(
    ctx: AdminContext, text: str, *, source: str = "draft"
) -> RuleProblems | AdminError | None:
    """Every problem of ``text`` as a rules version (``None``: it would be accepted)."""
    refused = _superadmin(ctx, "checks rules")
    if refused is not None:
        return refused
    settings = _editable(ctx)
    if isinstance(settings, AdminError):
        return settings
    unfit = draft_problem(text)
    if unfit is not None:
        return unfit
    _, problems = check_rules_text(text, source=source, env=rules_env(settings))
    return RuleProblems(tuple(problems)) if problems else None


async def diff_draft(ctx: AdminContext, text: str) -> str | AdminError:
    """A unified diff from the active version to ``text`` (empty when they agree)."""
    refused = _superadmin(ctx, "reads rules versions")
    if refused is not None:
        return refused
    active = await version_store.active_version(ctx.engine)
    if active is None:
        return yamlsource.diff("", text, old_name="no active version", new_name="draft")
    return yamlsource.diff(
        active.yaml, text, old_name=f"version {active.id} (active)", new_name="draft"
    )


async def active_rules(ctx: AdminContext) -> ActiveRules | AdminError | None:
    """The active version and its latest activation; ``None`` before the first."""
    if not ctx.actor.superadmin and not ctx.actor.tenants:
        return AdminError(f"{ctx.actor.name} administers no tenant", "forbidden")
    state = await version_store.active_state(ctx.engine)
    if state is None:
        return None
    version = await version_store.get_version(ctx.engine, state.version_id)
    if version is None:  # the store forbids deleting the active version
        return None
    comment = await _activation_comment(ctx.engine, state.version_id)
    return ActiveRules(
        version=version if ctx.actor.superadmin else _without_text(version),
        activated_by=state.activated_by,
        activated_at=state.activated_at,
        comment=version.comment if comment is None else comment,
    )


async def _activation_comment(engine: AsyncEngine, version_id: int) -> str | None:
    """The comment of the newest ``rules-activated`` record, if it made ``version_id``
    active."""
    rows = await audit_log.recent_rows(engine, AuditFilter(kind="rules-activated"), limit=1)
    if not rows:
        return None
    data = json.loads(rows[0].data)
    if data.get("version") != version_id:
        return None
    return str(data.get("comment", ""))


def editing_refusal(ctx: AdminContext) -> AdminError | None:
    """Why rules cannot be changed here (the file manages them), or ``None``."""
    settings = _editable(ctx)
    return settings if isinstance(settings, AdminError) else None


def comment_problem(comment: str) -> AdminError | None:
    """Refuse a comment longer than the store keeps for a version or an activation."""
    if len(comment) > MAX_COMMENT_CHARS:
        message = f"a comment has at most {MAX_COMMENT_CHARS} characters, not {len(comment)}"
        return AdminError(message, problems=((None, message),))
    return None
