"""Shadow mode for rules versions: start, stop, report, and activate when clean.

A version in shadow is decided beside the active one on every live request
(``gateway/shadow.py``); the differences are recorded per shadow run
(``store/shadow_runs.py``). Only a superadmin starts, stops, reads the report (it names
requests of every tenant) or activates. Starting and stopping are audited
(``rules-shadow-started``, ``rules-shadow-stopped``); activating is the usual
``rules-activated`` and stops the shadow.

A report is *clean* when the run decided at least one request, found no difference
(an unjudged request counts as one: the shadow could not vouch for it) and dropped
none. Each process writes what it found every second or so, so a report lags live
traffic by about that much.

Activation therefore drains before it decides. It ends the run's judging first (the
run is *draining*: every process stops deciding in shadow and writes what it holds),
waits ``DRAIN_SECONDS`` for those writes, then in one transaction reads the final
report and, if clean, activates the version and ends the run; if not, the run goes on
and the admin gets the refusal. A report that is not clean as written already is
refused at once, without pausing the shadow (what is written can only add up).
Stopping drains the same way, so a stopped run's report holds every process's last
findings; a batch that still arrives after a run ended is counted as dropped
(``store/shadow_runs.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.admin import rules
from gateway.admin.service import AdminContext, AdminError
from gateway.shadow import FLUSH_SECONDS
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from gateway.store.notify import POLL_SECONDS
from gateway.store.shadow_runs import DifferenceGroup, Finished, Outcome, ShadowRun

DRAIN_MARGIN_SECONDS = 0.5
"""Slack for a process's last write to commit (a busy store, a slow disk)."""
DRAIN_SECONDS = POLL_SECONDS + FLUSH_SECONDS + DRAIN_MARGIN_SECONDS
"""How long an activation waits, once judging has ended, before it reads the report: a
process notices the drain within ``POLL_SECONDS`` (at once by NOTIFY on PostgreSQL) and
writes what it holds then, or at its next flush within ``FLUSH_SECONDS``. A write
later still (a process cut off from the store, or one whose LISTEN connection died
unnoticed and polls every ``NOTIFIED_POLL_SECONDS``) is not lost silently: it is
counted as dropped on the ended run. Read at each activation, so tests can shorten it."""


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """A shadow run and its differences, grouped by routes, decisions and reasons."""

    run: ShadowRun
    active: int | None
    """The version active now."""
    groups: tuple[DifferenceGroup, ...]

    @property
    def differences(self) -> int:
        return sum(group.count for group in self.groups)

    @property
    def clean(self) -> bool:
        """Decided something, and found no difference, unjudged request or drop."""
        return is_clean(self.run, self.groups)

    @property
    def verdict(self) -> str:
        """One line saying whether the shadow version can be activated on this evidence."""
        run = self.run
        if run.decided == 0:
            return "no request has been decided in shadow yet"
        if self.clean:
            return f"clean: no differences over {run.decided} decisions"
        dropped = f", {run.dropped} dropped" if run.dropped else ""
        return (
            f"{self.differences} of {run.decided} decisions differ "
            f"({len(self.groups)} group(s){dropped})"
        )


def is_clean(run: ShadowRun, groups: Sequence[DifferenceGroup]) -> bool:
    """Whether ``run`` decided something, and found no difference, unjudged request or drop."""
    return run.decided > 0 and not groups and run.dropped == 0


def _superadmin(ctx: AdminContext, what: str) -> AdminError | None:
    return None if ctx.actor.superadmin else AdminError(f"only a superadmin {what}", "forbidden")


async def start_shadow(
    ctx: AdminContext, version_id: int, comment: str = ""
) -> ShadowRun | AdminError:
    """Run ``version_id`` in shadow on every gateway process (within a second).

    Refused for an unknown version, the active version, a version that does not compile
    here, or while another version is in shadow.
    """
    refused = _superadmin(ctx, "runs rules in shadow")
    if refused is not None:
        return refused
    settings = rules.lifecycle_settings(ctx)
    if isinstance(settings, AdminError):
        return settings
    version = await version_store.get_version(ctx.engine, version_id)
    if version is None:
        return rules.unknown_version(version_id)
    active = await version_store.active_id(ctx.engine)
    if active == version_id:
        return AdminError(
            f"version {version_id} is the active version; run a different version in shadow"
        )
    ruleset, problems = rules.compile_version(version, rules.rules_env(settings))
    if ruleset is None:
        return AdminError(
            f"version {version_id} does not compile here: "
            + "; ".join(str(problem) for problem in problems)
        )
    run, started = await shadow_store.start(
        ctx.engine, version_id, by=ctx.actor.name, comment=comment.strip(), now=ctx.clock()
    )
    if not started:
        being = "being activated" if run.draining else "in shadow already"
        return AdminError(
            f"version {run.version_id} is {being} (run {run.id}); stop it first "
            "with `gatehold rules shadow stop`",
            "conflict",
        )
    await ctx.audit_event(
        "rules-shadow-started",
        version=version_id,
        run=run.id,
        active=active,
        digest=version.source_hash,
        comment=run.comment,
        before=None,
        after={"shadow": version_id, "run": run.id},
    )
    return run


async def stop_shadow(
    ctx: AdminContext, comment: str = "", *, why: str = "stopped"
) -> ShadowRun | AdminError:
    """Stop the shadow run on every process; its report stays readable and holds what
    every process found (drained as for an activation)."""
    refused = _superadmin(ctx, "stops a shadow run")
    if refused is not None:
        return refused
    if await shadow_store.drain(ctx.engine, now=ctx.clock()) is not None:
        await asyncio.sleep(DRAIN_SECONDS)  # every process's last findings go in first
    run = await shadow_store.stop(ctx.engine, by=ctx.actor.name, now=ctx.clock())
    if run is None:
        return AdminError("no rules version is in shadow", "not-found")
    await ctx.audit_event(
        "rules-shadow-stopped",
        version=run.version_id,
        run=run.id,
        why=why,
        decided=run.decided,
        agreed=run.agreed,
        comment=comment.strip(),
        before={"shadow": run.version_id, "run": run.id},
        after=None,
    )
    return run


async def shadow_report(ctx: AdminContext, run_id: int | None = None) -> ShadowReport | AdminError:
    """The report of ``run_id``; by default of the running shadow, else the latest run."""
    refused = _superadmin(ctx, "reads shadow reports")
    if refused is not None:
        return refused
    if run_id is not None:
        run = await shadow_store.get_run(ctx.engine, run_id)
        if run is None:
            return AdminError(f"no shadow run {run_id}", "not-found")
    else:
        run = await shadow_store.running(ctx.engine) or await shadow_store.latest(ctx.engine)
        if run is None:
            return AdminError(
                "no rules version has been run in shadow; start one with "
                "`gatehold rules shadow start VERSION`",
                "not-found",
            )
    groups = await shadow_store.differences(ctx.engine, run.id)
    active = await version_store.active_id(ctx.engine)
    return ShadowReport(run, active, tuple(groups))


async def activate_shadow(
    ctx: AdminContext, *, even_if_different: bool = False, comment: str = ""
) -> ShadowReport | AdminError:
    """Activate the version in shadow and stop the shadow: only on a clean report,
    unless ``even_if_different``. Returns the report the decision was made on.

    Drains first (see the module's docstring): the decision reads what every process
    found up to the end of judging, and is made in the transaction that activates and
    ends the run, so of two activations at once only one goes ahead."""
    refused = _superadmin(ctx, "activates rules")
    if refused is not None:
        return refused
    found = await shadow_store.current(ctx.engine)
    if found is None:
        return AdminError("no rules version is in shadow", "not-found")
    report = await shadow_report(ctx, found.id)
    if isinstance(report, AdminError):
        return report
    if not report.clean and not even_if_different:
        return _not_clean(report)  # what is written already refuses: no need to drain
    version = await rules.activatable(ctx, found.version_id)
    if isinstance(version, AdminError):
        return version
    if await shadow_store.drain(ctx.engine, now=ctx.clock(), run_id=found.id) is None:
        return AdminError(f"shadow run {found.id} was stopped meanwhile", "conflict")
    await asyncio.sleep(DRAIN_SECONDS)
    finished = await shadow_store.finish(
        ctx.engine,
        found.id,
        accept=lambda run, groups: even_if_different or is_clean(run, groups),
        by=ctx.actor.name,
        now=ctx.clock(),
    )
    return await _after_finish(ctx, finished, comment)


async def _after_finish(
    ctx: AdminContext, finished: Finished, comment: str
) -> ShadowReport | AdminError:
    """The admin's answer to ``shadow_store.finish``, with its audit records."""
    run = finished.run
    if finished.outcome is Outcome.NOT_DRAINING or run is None:
        return AdminError(
            "the shadow run was stopped, activated or restarted by someone else while this "
            "activation waited for every gateway's last findings; read "
            "`gatehold rules shadow report`",
            "conflict",
        )
    activation = finished.activation
    beside = (  # the version the shadow was compared with, active until now
        activation.previous if activation is not None else await version_store.active_id(ctx.engine)
    )
    report = ShadowReport(run, beside, finished.groups)
    if finished.outcome is Outcome.REFUSED:
        return _not_clean(report)
    if activation is None:
        return rules.unknown_version(run.version_id)
    why = comment.strip() or f"activated from shadow run {run.id}: {report.verdict}"
    activated = await rules.audit_activation(ctx, activation, why)
    await ctx.audit_event(
        "rules-shadow-stopped",
        version=run.version_id,
        run=run.id,
        why="activated",
        decided=run.decided,
        agreed=run.agreed,
        comment=why,
        before={"shadow": run.version_id, "run": run.id},
        after=None,
    )
    return activated if isinstance(activated, AdminError) else report


def _not_clean(report: ShadowReport) -> AdminError:
    return AdminError(
        f"the shadow report of version {report.run.version_id} is not clean: "
        f"{report.verdict}; read it with `gatehold rules shadow report`, or activate "
        "anyway with --even-if-different",
        "conflict",
    )
