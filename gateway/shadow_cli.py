"""``gatehold rules shadow start|stop|report|activate``: shadow mode from the command line.

Over ``gateway/admin/shadow.py``, as the CLI's superadmin. ``gateway/cli.py`` hands in
its helpers (``CliTools``) and adds the group under ``rules``; this module does not
import the CLI, so the two stay one-way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from gateway.admin import shadow as shadow_admin
from gateway.admin.service import AdminContext, AdminError
from gateway.admin.shadow import ShadowReport
from gateway.config.settings import Settings

T = TypeVar("T")


class AdminRun(Protocol):
    """``cli.admin_run``: one admin workflow as the CLI's superadmin, or exit 2."""

    def __call__(
        self, settings: Settings, work: Callable[[AdminContext], Awaitable[T | AdminError]], /
    ) -> T: ...


@dataclass(frozen=True)
class CliTools:
    """What every ``gatehold`` command shares, from ``gateway/cli.py``."""

    config_option: Callable[[Callable[..., Any]], Callable[..., Any]]
    settings_from: Callable[[Path | None], Settings]
    admin_run: AdminRun
    stamp: Callable[[float | None], str]


def shadow_group(tools: CliTools) -> click.Group:
    """The ``shadow`` command group, over the CLI's ``tools``."""
    config_option, settings_from, admin_run = (
        tools.config_option,
        tools.settings_from,
        tools.admin_run,
    )

    @click.group(name="shadow")
    def shadow_command() -> None:
        """Run a rules version in shadow beside the active one and compare decisions."""

    @shadow_command.command(name="start")
    @config_option
    @click.argument("version_id", type=int)
    @click.option("--comment", default="", help="Why (kept in the audit record).")
    def shadow_start(config_path: Path | None, version_id: int, comment: str) -> None:
        """Decide every live request under VERSION_ID too (the answers stay the active one's)."""
        settings = settings_from(config_path)
        run = admin_run(settings, lambda ctx: shadow_admin.start_shadow(ctx, version_id, comment))
        click.echo(
            f"rules version {version_id} runs in shadow (run {run.id}); "
            "read `gatehold rules shadow report`"
        )

    @shadow_command.command(name="stop")
    @config_option
    @click.option("--comment", default="", help="Why (kept in the audit record).")
    def shadow_stop(config_path: Path | None, comment: str) -> None:
        """Stop the shadow run on every gateway process; its report stays readable."""
        settings = settings_from(config_path)
        run = admin_run(settings, lambda ctx: shadow_admin.stop_shadow(ctx, comment))
        click.echo(
            f"shadow run {run.id} of rules version {run.version_id} stopped after "
            f"{run.decided} decisions"
        )

    @shadow_command.command(name="report")
    @config_option
    @click.option(
        "--run", "run_id", type=int, default=None, help="A past run (default: the latest)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    def shadow_report(config_path: Path | None, run_id: int | None, as_json: bool) -> None:
        """The differences between the shadow and the live decisions, grouped by route and
        reason pair, with counts and sample requests; says "clean" when there are none."""
        settings = settings_from(config_path)
        report = admin_run(settings, lambda ctx: shadow_admin.shadow_report(ctx, run_id))
        if as_json:
            click.echo(json.dumps(report_document(report), indent=2))
            return
        for line in report_lines(report, tools.stamp):
            click.echo(line)

    @shadow_command.command(name="activate")
    @config_option
    @click.option(
        "--even-if-different",
        is_flag=True,
        help="Activate although the report is not clean.",
    )
    @click.option("--comment", default="", help="Why (kept in the audit record).")
    def shadow_activate(config_path: Path | None, even_if_different: bool, comment: str) -> None:
        """Activate the version in shadow when its report is clean, and stop the shadow.

        Pauses the shadow first and waits about two seconds for every gateway to write
        what it found, so the report it decides on is complete; a report that is not
        clean leaves the shadow running."""
        settings = settings_from(config_path)
        report = admin_run(
            settings,
            lambda ctx: shadow_admin.activate_shadow(
                ctx, even_if_different=even_if_different, comment=comment
            ),
        )
        click.echo(
            f"rules version {report.run.version_id} is active ({report.verdict}); shadow stopped"
        )

    return shadow_command


def report_lines(report: ShadowReport, stamp: Callable[[float | None], str]) -> list[str]:
    """The report as the terminal shows it: a summary, then one block per group."""
    run = report.run
    state = (
        "running"
        if run.running
        else f"paused {stamp(run.stopped_at)} for an activation"
        if run.draining
        else f"stopped {stamp(run.stopped_at)}"
    )
    lines = [
        f"shadow run {run.id}: rules version {run.version_id} beside active version "
        f"{report.active} ({state}; started {stamp(run.started_at)} by {run.started_by})",
        f"decided {run.decided}, agreed {run.agreed}, unjudged {run.unjudged}, "
        f"dropped {run.dropped}",
        report.verdict,
    ]
    for group in report.groups:
        key = group.key
        lines.append(
            f"{group.count}\t{key.live_route} -> {key.shadow_route}\t"
            f"{key.live_decision.upper()} {key.live_reason} -> "
            f"{key.shadow_decision.upper()} {key.shadow_reason}\t(live version {key.live_version})"
        )
        lines.extend(
            f"\t{sample.request_id}\t{sample.principal}\t{sample.method} {sample.target}"
            for sample in group.samples
        )
    return lines


def report_document(report: ShadowReport) -> dict[str, Any]:
    """The report as JSON (the admin API's shape)."""
    run = report.run
    return {
        "run": run.id,
        "version": run.version_id,
        "active": report.active,
        "running": run.running,
        "draining": run.draining,
        "started_at": run.started_at,
        "started_by": run.started_by,
        "stopped_at": run.stopped_at,
        "decided": run.decided,
        "agreed": run.agreed,
        "unjudged": run.unjudged,
        "dropped": run.dropped,
        "differences": report.differences,
        "clean": report.clean,
        "verdict": report.verdict,
        "groups": [
            {
                "live_version": g.key.live_version,
                "live_route": g.key.live_route,
                "shadow_route": g.key.shadow_route,
                "live": {"decision": g.key.live_decision, "reason": g.key.live_reason},
                "shadow": {"decision": g.key.shadow_decision, "reason": g.key.shadow_reason},
                "count": g.count,
                "first_at": g.first_at,
                "last_at": g.last_at,
                "samples": [
                    {
                        "at": s.at,
                        "request_id": s.request_id,
                        "method": s.method,
                        "target": s.target,
                        "principal": s.principal,
                        "tenant": s.tenant,
                        "live_detail": s.live_detail,
                        "shadow_detail": s.shadow_detail,
                    }
                    for s in g.samples
                ],
            }
            for g in report.groups
        ],
    }
