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
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admin import rules
from gateway.admin.service import AdminContext, AdminError
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from gateway.store.shadow_runs import DifferenceGroup, ShadowRun


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
        return self.run.decided > 0 and not self.groups and self.run.dropped == 0

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
    settings = rules._settings(ctx)
    if isinstance(settings, AdminError):
        return settings
    version = await version_store.get_version(ctx.engine, version_id)
    if version is None:
        return rules._no_version(version_id)
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
        return AdminError(
            f"version {run.version_id} is in shadow already (run {run.id}); stop it first "
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
    """Stop the shadow run on every process; its report stays readable."""
    refused = _superadmin(ctx, "stops a shadow run")
    if refused is not None:
        return refused
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
    unless ``even_if_different``. Returns the report the decision was made on."""
    refused = _superadmin(ctx, "activates rules")
    if refused is not None:
        return refused
    running = await shadow_store.running(ctx.engine)
    if running is None:
        return AdminError("no rules version is in shadow", "not-found")
    report = await shadow_report(ctx, running.id)
    if isinstance(report, AdminError):
        return report
    if not report.clean and not even_if_different:
        return AdminError(
            f"the shadow report of version {running.version_id} is not clean: "
            f"{report.verdict}; read it with `gatehold rules shadow report`, or activate "
            "anyway with --even-if-different",
            "conflict",
        )
    why = comment.strip() or f"activated from shadow run {running.id}: {report.verdict}"
    activated = await rules.activate_version(ctx, running.version_id, why)
    if isinstance(activated, AdminError):
        return activated
    stopped = await stop_shadow(ctx, why, why="activated")
    return stopped if isinstance(stopped, AdminError) else report
