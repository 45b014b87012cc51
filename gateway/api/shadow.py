"""``/rules/shadow``: run a rules version in shadow, read its report, activate it when clean.

Over ``gateway/admin/shadow.py``; superadmins only (the report names requests of every
tenant).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from gateway.admin import shadow as shadow_admin
from gateway.admin.service import AdminError
from gateway.admin.shadow import ShadowReport
from gateway.api.models import Strict
from gateway.api.operations import API, Call, Empty
from gateway.api.rule_versions import Comment, VersionId
from gateway.store.shadow_runs import ShadowRun


class StartShadow(Strict):
    version: VersionId
    comment: Comment = ""


class StopShadow(Strict):
    comment: Comment = ""


class ActivateShadow(Strict):
    even_if_different: bool = False
    """Activate although the report is not clean."""
    comment: Comment = ""


class ReportQuery(Strict):
    run: Annotated[int, Field(ge=1, le=2**53)] | None = None
    """A past run (default: the running one, else the latest)."""


class Run(BaseModel):
    id: int
    version: int
    started_at: float
    started_by: str
    comment: str
    stopped_at: float | None
    running: bool
    draining: bool
    """Paused by an activation that waits for every gateway's last findings."""
    decided: int
    agreed: int
    unjudged: int
    dropped: int

    @classmethod
    def of(cls, run: ShadowRun) -> Run:
        return cls(
            id=run.id,
            version=run.version_id,
            started_at=run.started_at,
            started_by=run.started_by,
            comment=run.comment,
            stopped_at=run.stopped_at,
            running=run.running,
            draining=run.draining,
            decided=run.decided,
            agreed=run.agreed,
            unjudged=run.unjudged,
            dropped=run.dropped,
        )


class Judgement(BaseModel):
    decision: str
    """``allow``, ``deny``, or (shadow only) ``unjudged``."""
    reason: str


class Sample(BaseModel):
    at: float
    request_id: str
    method: str
    target: str
    principal: str
    tenant: str
    live_detail: str
    shadow_detail: str


class Group(BaseModel):
    live_version: int
    live_route: str
    shadow_route: str
    live: Judgement
    shadow: Judgement
    count: int
    first_at: float
    last_at: float
    samples: list[Sample]


class Report(BaseModel):
    run: Run
    active: int | None
    clean: bool
    verdict: str
    differences: int
    groups: list[Group]

    @classmethod
    def of(cls, report: ShadowReport) -> Report:
        return cls(
            run=Run.of(report.run),
            active=report.active,
            clean=report.clean,
            verdict=report.verdict,
            differences=report.differences,
            groups=[
                Group(
                    live_version=g.key.live_version,
                    live_route=g.key.live_route,
                    shadow_route=g.key.shadow_route,
                    live=Judgement(decision=g.key.live_decision, reason=g.key.live_reason),
                    shadow=Judgement(decision=g.key.shadow_decision, reason=g.key.shadow_reason),
                    count=g.count,
                    first_at=g.first_at,
                    last_at=g.last_at,
                    samples=[
                        Sample(
                            at=s.at,
                            request_id=s.request_id,
                            method=s.method,
                            target=s.target,
                            principal=s.principal,
                            tenant=s.tenant,
                            live_detail=s.live_detail,
                            shadow_detail=s.shadow_detail,
                        )
                        for s in g.samples
                    ],
                )
                for g in report.groups
            ],
        )


@API.post("/rules/shadow", body=StartShadow, response=Run, status=201, errors=(404, 409))
async def start_shadow(call: Call[StartShadow, Empty]) -> Run | AdminError:
    """Decide every live request under this version too; the answers stay the active one's."""
    run = await shadow_admin.start_shadow(call.ctx, call.body.version, call.body.comment)
    return run if isinstance(run, AdminError) else Run.of(run)


@API.get("/rules/shadow", query=ReportQuery, response=Report, errors=(404,))
async def shadow_report(call: Call[Empty, ReportQuery]) -> Report | AdminError:
    """The differences grouped by route and reason pair, with counts and samples."""
    report = await shadow_admin.shadow_report(call.ctx, call.query.run)
    return report if isinstance(report, AdminError) else Report.of(report)


@API.post("/rules/shadow/stop", body=StopShadow, response=Run, errors=(404,))
async def stop_shadow(call: Call[StopShadow, Empty]) -> Run | AdminError:
    """Stop the shadow on every gateway process; the report stays readable."""
    run = await shadow_admin.stop_shadow(call.ctx, call.body.comment)
    return run if isinstance(run, AdminError) else Run.of(run)


@API.post("/rules/shadow/activate", body=ActivateShadow, response=Report, errors=(404, 409))
async def activate_shadow(call: Call[ActivateShadow, Empty]) -> Report | AdminError:
    """Activate the version in shadow if its report is clean (or ``even_if_different``).

    Pauses the shadow and waits about two seconds for every gateway's last findings
    first; a report that is not clean leaves the shadow running."""
    report = await shadow_admin.activate_shadow(
        call.ctx, even_if_different=call.body.even_if_different, comment=call.body.comment
    )
    return report if isinstance(report, AdminError) else Report.of(report)
