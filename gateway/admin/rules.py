"""The rules lifecycle: propose, compare, preview, activate and roll back versions.

Versions live in the store (``store/rule_versions.py``); the gateway processes follow
the active one (``rules_sync.py``). With ``rules.managed_by: file`` the file is the
truth and every change here is refused with an ``AdminError`` of code ``conflict``;
with ``admin`` superadmins change the rules here.

Who may do what: only a superadmin proposes, activates or rolls back, reads a
version's text or a diff (the YAML may name internal hosts and DSNs), and previews
impact (it replays every tenant's audited requests). A tenant admin may list versions
(without reading them) and simulate, as the people and keys of their own tenants.

Simulation and impact preview run ``pipeline.decide`` through ``admin/explain.py``,
the one function that decides live traffic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.active_rules import active_ruleset
from gateway.admin.explain import Explanation, explain, principal_for, principal_for_key
from gateway.admin.service import AdminContext, AdminError, may_see
from gateway.audit import MAX_AUDITED_OBJECTS
from gateway.config import yamlsource
from gateway.config.loader import RuleProblem, check_rules_text
from gateway.config.settings import Settings
from gateway.context import Deciders
from gateway.errors import ConfigError
from gateway.ingress import canonicalize
from gateway.model import (
    ANONYMOUS,
    Anonymous,
    Principal,
    Rejection,
    RouteMatch,
    RuleSet,
)
from gateway.shadow import reads_body_ids
from gateway.store import api_keys as key_store
from gateway.store import audit_log
from gateway.store import rule_versions as version_store
from gateway.store import users as user_store
from gateway.store.audit_log import AuditFilter, AuditRow
from gateway.store.rule_versions import VersionRow

MAX_REPLAY = 10_000
"""The most audited requests one impact preview replays."""
REPLAYED_SOURCES = ("path.", "query.")
"""Object ids a replay finds again from the audit row (bodies are not recorded)."""


@dataclass(frozen=True, slots=True)
class RuleProblems:
    """Why a proposed text is not a valid rules version: every problem at once."""

    problems: tuple[RuleProblem, ...]
    """Each with ``line`` (from 1, or ``None``) and ``message``; ``str()`` reads
    ``source:line: field: what is wrong — what to do``."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """One decision of a replayed request: allowed or not, its reason code and steps."""

    allowed: bool
    reason: str
    steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImpactChange:
    """An audited request the draft would decide differently from the active version."""

    request_id: str
    at: float
    caller: str
    method: str
    target: str
    active: Judgement
    draft: Judgement


@dataclass(frozen=True, slots=True)
class ImpactPreview:
    """The outcome of replaying the last audited requests against a draft."""

    draft: int
    active: int
    replayed: int
    """Requests decided under both versions."""
    changes: tuple[ImpactChange, ...]
    """Every replayed request whose decision (allowed, reason) would change, newest first."""
    skipped: tuple[str, ...]
    """``request <id>: why`` for each request that could not be replayed faithfully."""


def rules_env(settings: Settings) -> dict[str, str]:
    """The values ``${VAR}`` in rules are read from: the environment, then ``rules_env``."""
    return {**os.environ, **settings.rules_env}


def compile_version(
    version: VersionRow, env: Mapping[str, str]
) -> tuple[RuleSet | None, list[RuleProblem]]:
    """A stored version compiled in this process's environment."""
    return check_rules_text(version.yaml, source=f"rules version {version.id}", env=env)


async def ruleset_of(
    engine: AsyncEngine, settings: Settings, version_id: int | None
) -> RuleSet | AdminError:
    """The rules of ``version_id``; with ``None``, the active version (the file's rules
    while the store has none yet)."""
    env = rules_env(settings)
    if version_id is None:
        try:
            return await active_ruleset(engine, settings, env)
        except ConfigError as error:
            return AdminError("; ".join(error.problems))
    version = await version_store.get_version(engine, version_id)
    if version is None:
        return unknown_version(version_id)
    ruleset, problems = compile_version(version, env)
    if ruleset is None:
        return AdminError("; ".join(str(problem) for problem in problems))
    return ruleset


def unknown_version(version_id: int) -> AdminError:
    """The refusal for a version id the store does not hold (``not-found``)."""
    return AdminError(
        f"no rules version {version_id}; `gatehold rules versions` lists them", "not-found"
    )


def lifecycle_settings(ctx: AdminContext) -> Settings | AdminError:
    """The gateway's settings, which every rules workflow needs (to compile a version in
    this environment); an ``invalid`` refusal for a context made without them."""
    if ctx.settings is None:
        return AdminError("the rules lifecycle needs the gateway's settings", "invalid")
    return ctx.settings


def _superadmin(ctx: AdminContext, what: str) -> AdminError | None:
    if ctx.actor.superadmin:
        return None
    return AdminError(f"only a superadmin {what}", "forbidden")


def _editable(ctx: AdminContext) -> Settings | AdminError:
    """The settings, if rules are changed here (``managed_by: admin``)."""
    settings = lifecycle_settings(ctx)
    if isinstance(settings, AdminError):
        return settings
    if settings.rules_managed_by == "file":
        return AdminError(
            f"the rules are managed by the file {settings.rules_path}: change the file and "
            "send SIGHUP (or restart); set rules.managed_by: admin to change them here",
            "conflict",
        )
    return settings


async def propose_version(
    ctx: AdminContext, yaml_text: str, comment: str = "", *, source: str = "proposed rules"
) -> VersionRow | RuleProblems | AdminError:
    """Validate ``yaml_text`` and store it as a new, inactive version.

    Returns the stored version, or ``RuleProblems`` with every problem at once (each
    ``source:line: …``). Refused (``conflict``) when the file manages the rules; only
    superadmins propose.
    """
    refused = _superadmin(ctx, "proposes rules")
    if refused is not None:
        return refused
    settings = _editable(ctx)
    if isinstance(settings, AdminError):
        return settings
    _, problems = check_rules_text(yaml_text, source=source, env=rules_env(settings))
    if problems:
        return RuleProblems(tuple(problems))
    version = await version_store.add_version(
        ctx.engine, yaml_text, author=ctx.actor.name, comment=comment.strip(), now=ctx.clock()
    )
    await ctx.audit_event(
        "rules-proposed",
        version=version.id,
        digest=version.source_hash,
        comment=version.comment,
        before=None,
        after={"version": version.id, "digest": version.source_hash},
    )
    return version


async def list_versions(ctx: AdminContext, limit: int = 100) -> list[VersionRow] | AdminError:
    """The newest ``limit`` versions, newest first. For tenant admins without the text."""
    rows = await version_store.list_versions(ctx.engine, limit=max(1, min(limit, 1000)))
    if ctx.actor.superadmin:
        return rows
    if not ctx.actor.tenants:
        return AdminError(f"{ctx.actor.name} administers no tenant", "forbidden")
    return [_without_text(row) for row in rows]


def _without_text(row: VersionRow) -> VersionRow:
    return VersionRow(
        row.id, "", row.source_hash, row.author, row.created_at, row.comment, row.activated_at
    )


async def active_version_id(ctx: AdminContext) -> int | None:
    """The id of the version every gateway process runs (``None`` before the first)."""
    return await version_store.active_id(ctx.engine)


async def get_version(ctx: AdminContext, version_id: int) -> VersionRow | AdminError:
    """One version with its YAML (superadmins only)."""
    refused = _superadmin(ctx, "reads rules versions")
    if refused is not None:
        return refused
    version = await version_store.get_version(ctx.engine, version_id)
    return unknown_version(version_id) if version is None else version


async def diff_versions(ctx: AdminContext, a: int, b: int) -> str | AdminError:
    """A unified diff from version ``a`` to version ``b`` (empty when the texts agree)."""
    old = await get_version(ctx, a)
    if isinstance(old, AdminError):
        return old
    new = await get_version(ctx, b)
    if isinstance(new, AdminError):
        return new
    return yamlsource.diff(old.yaml, new.yaml, old_name=f"version {a}", new_name=f"version {b}")


async def activate_version(
    ctx: AdminContext, version_id: int, comment: str = ""
) -> VersionRow | AdminError:
    """Make ``version_id`` the rules every gateway process runs (within a second).

    Audited as ``rules-activated`` with ``before`` and ``after`` version ids; activating
    a version older than the active one is a rollback and says so (``rollback: true``).
    The version must compile here; refused (``conflict``) when the file manages rules.
    """
    version = await activatable(ctx, version_id)
    if isinstance(version, AdminError):
        return version
    activation = await version_store.activate(
        ctx.engine, version_id, by=ctx.actor.name, now=ctx.clock()
    )
    if activation is None:
        return unknown_version(version_id)
    return await audit_activation(ctx, activation, comment)


async def activatable(ctx: AdminContext, version_id: int) -> VersionRow | AdminError:
    """``version_id``, if this actor may activate it here: a superadmin, rules managed
    by the admin (not the file), a stored version that compiles in this environment."""
    refused = _superadmin(ctx, "activates rules")
    if refused is not None:
        return refused
    settings = _editable(ctx)
    if isinstance(settings, AdminError):
        return settings
    version = await version_store.get_version(ctx.engine, version_id)
    if version is None:
        return unknown_version(version_id)
    ruleset, problems = compile_version(version, rules_env(settings))
    if ruleset is None:
        return AdminError(
            f"version {version_id} does not compile here: "
            + "; ".join(str(problem) for problem in problems)
        )
    return version


async def audit_activation(
    ctx: AdminContext, activation: version_store.Activation, comment: str
) -> VersionRow | AdminError:
    """Audit an activation the store made (``rules-activated``, a rollback said so);
    refused when the version was active already (nothing changed, nothing audited)."""
    version = activation.version
    if not activation.changed:
        return AdminError(f"version {version.id} is the active version already")
    previous = activation.previous
    await ctx.audit_event(
        "rules-activated",
        source=f"rules version {version.id}",
        version=version.id,
        digest=version.source_hash,
        comment=comment.strip(),
        rollback=previous is not None and version.id < previous,
        problems=[],
        before={"version": previous},
        after={"version": version.id},
    )
    return version


async def rollback_version(
    ctx: AdminContext, version_id: int, comment: str = ""
) -> VersionRow | AdminError:
    """Activate an older version again (audited ``rollback: true``)."""
    refused = _superadmin(ctx, "rolls back rules")
    if refused is not None:
        return refused
    active = await version_store.active_id(ctx.engine)
    if active is not None and version_id >= active:
        return AdminError(
            f"version {version_id} is not older than the active version {active}; "
            "use activate for newer versions"
        )
    return await activate_version(ctx, version_id, comment or f"rollback to {version_id}")


async def simulate(
    ctx: AdminContext,
    version_id: int | None,
    caller: str | int | None,
    method: str,
    target: str,
    *,
    tenant: str | None = None,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Explanation | AdminError:
    """Decide ``method target`` as ``caller`` under a version, as live traffic would.

    ``caller`` is a user's email, an API key's id (``int``) or ``None`` (anonymous);
    ``version_id`` ``None`` means the active version. ``tenant`` picks a user's active
    tenant. A tenant admin simulates only as people and keys of their tenants.
    """
    settings = lifecycle_settings(ctx)
    if isinstance(settings, AdminError):
        return settings
    refused = await _may_act_as(ctx, caller)
    if refused is not None:
        return refused
    ruleset = await ruleset_of(ctx.engine, settings, version_id)
    if isinstance(ruleset, AdminError):
        return ruleset
    deciders = _deciders(settings, ruleset, ctx.engine)
    await deciders.ownership.start()
    try:
        principal = await _principal(deciders, caller, tenant)
        if isinstance(principal, AdminError):
            return principal
        return await explain(
            deciders,
            principal=principal,
            method=method,
            target=target,
            body=body,
            content_type=content_type,
            headers=headers,
        )
    finally:
        await deciders.ownership.close()


async def _may_act_as(ctx: AdminContext, caller: str | int | None) -> AdminError | None:
    if ctx.actor.superadmin:
        return None
    if not ctx.actor.tenants:
        return AdminError(f"{ctx.actor.name} administers no tenant", "forbidden")
    if isinstance(caller, int):
        key = await key_store.get_key(ctx.engine, caller)
        if key is None or not ctx.actor.manages(key.tenant):
            return AdminError(f"no API key {caller}", "not-found")
        return None
    if caller is None:
        return None
    user = await user_store.get_user_by_email(ctx.engine, caller.strip().lower())
    if user is None or not may_see(ctx.actor, user):
        return AdminError(f"no user {caller!r}", "not-found")
    return None


async def _principal(
    deciders: Deciders, caller: str | int | None, tenant: str | None
) -> Principal | Anonymous | AdminError:
    if caller is None:
        return ANONYMOUS
    if isinstance(caller, int):
        found = await principal_for_key(deciders, caller)
        return AdminError(found, "not-found") if isinstance(found, str) else found
    user = await principal_for(deciders, caller.strip().lower(), tenant=tenant)
    if user is None:
        return AdminError(f"no user {caller!r}; add one with `gatehold users add`", "not-found")
    return user


def _deciders(settings: Settings, ruleset: RuleSet, engine: AsyncEngine) -> Deciders:
    from gateway.deciders import build_deciders

    return build_deciders(settings, ruleset, engine)


async def impact_preview(
    ctx: AdminContext, version_id: int, last_n: int = 200
) -> ImpactPreview | AdminError:
    """Replay the last ``last_n`` audited requests against a draft and the active version.

    Both decisions run now, through the same ``pipeline.decide`` (owners looked up as
    live traffic would), so what differs is what the rules change. Requests that cannot
    be replayed faithfully (ids read from a body, a bearer-token caller, a caller that
    no longer exists, a truncated query) are listed in ``skipped``, never guessed.
    """
    refused = _superadmin(ctx, "previews the impact of rules")
    if refused is not None:
        return refused
    settings = lifecycle_settings(ctx)
    if isinstance(settings, AdminError):
        return settings
    if not 1 <= last_n <= MAX_REPLAY:
        return AdminError(f"replay between 1 and {MAX_REPLAY} requests, not {last_n}")
    active_id = await version_store.active_id(ctx.engine)
    if active_id is None:
        return AdminError("no version is active yet; there is nothing to compare with")
    draft_rules = await ruleset_of(ctx.engine, settings, version_id)
    if isinstance(draft_rules, AdminError):
        return draft_rules
    active_rules = await ruleset_of(ctx.engine, settings, active_id)
    if isinstance(active_rules, AdminError):
        return active_rules
    rows = await audit_log.recent_rows(ctx.engine, AuditFilter(kind="request"), limit=last_n)
    draft, active = (_deciders(settings, r, ctx.engine) for r in (draft_rules, active_rules))
    changes: list[ImpactChange] = []
    skipped: list[str] = []
    replayed = 0
    await draft.ownership.start()
    try:
        await active.ownership.start()
        try:
            for row in rows:
                outcome = await _replay(row, active, draft)
                if isinstance(outcome, str):
                    skipped.append(f"request {row.request_id}: {outcome}")
                    continue
                replayed += 1
                if outcome is not None:
                    changes.append(outcome)
        finally:
            await active.ownership.close()
    finally:
        await draft.ownership.close()
    return ImpactPreview(version_id, active_id, replayed, tuple(changes), tuple(skipped))


async def _replay(row: AuditRow, active: Deciders, draft: Deciders) -> ImpactChange | str | None:
    """The change one audited request would see, ``None`` for none, or why not replayed."""
    data: dict[str, Any] = json.loads(row.data)
    caller = await _recorded_caller(row, data, active)
    if isinstance(caller, str):
        return caller
    if data.get("query_truncated"):
        return "its query was too long to be recorded whole"
    objects = data.get("objects") or []
    if int(data.get("object_count", 0)) > MAX_AUDITED_OBJECTS or any(
        not str(o.get("source", "")).startswith(REPLAYED_SOURCES) for o in objects
    ):
        return "it named objects in its body, which the audit record does not hold"
    query = str(data.get("query") or "")
    target = row.path + (f"?{query}" if query else "")
    if _reads_body(active, row.method, target) or _reads_body(draft, row.method, target):
        return (
            "its route reads the body (object ids, the tenant it binds or the files it"
            " checks), which the audit record does not hold"
        )
    before = await explain(active, principal=caller, method=row.method, target=target)
    after = await explain(draft, principal=caller, method=row.method, target=target)
    old, new = before.decision, after.decision
    if (old.allowed, old.reason) == (new.allowed, new.reason):
        return None
    return ImpactChange(
        request_id=row.request_id,
        at=row.ts,
        caller=row.actor,
        method=row.method,
        target=target,
        active=Judgement(old.allowed, old.reason.value, before.steps),
        draft=Judgement(new.allowed, new.reason.value, after.steps),
    )


def _reads_body(deciders: Deciders, method: str, target: str) -> bool:
    """Whether the route ``method target`` matches decides by the body: takes object ids
    from it, binds the tenant it names (``body_tenant``) or checks the files it carries.
    Replayed without the body, such a route would refuse what it allowed live."""
    canonical = canonicalize(target)
    if isinstance(canonical, Rejection):
        return False
    match = deciders.router.match(canonical, method)
    if not isinstance(match, RouteMatch):
        return False
    route = match.route
    return reads_body_ids(route) or route.body_tenant is not None or route.upload is not None


async def _recorded_caller(
    row: AuditRow, data: Mapping[str, Any], deciders: Deciders
) -> Principal | Anonymous | str:
    """The principal an audited request came from, as it would be now; or why none."""
    if "identity" in data:
        return "its credential was refused at the time"
    method = data.get("auth_method", "none")
    if method == "none":
        return ANONYMOUS
    if method == "bearer-jwt":
        return "a bearer token's caller cannot be rebuilt from the record"
    if method == "api-key":
        key_id = data.get("api_key")
        if not isinstance(key_id, int):
            return "the record does not name its API key"
        found = await principal_for_key(deciders, key_id)
        return found
    tenant = data.get("active_tenant")
    user = await principal_for(deciders, row.actor, tenant=tenant if tenant else None)
    return f"no user {row.actor} any more" if user is None else user
