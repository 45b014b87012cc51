"""``/rules/versions``: propose, read, diff, preview the impact of and activate rules.

Over ``gateway/admin/rules.py``; with ``rules.managed_by: file`` every change is
answered 409 (the file is the truth).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from gateway.admin import rules
from gateway.admin.service import AdminError
from gateway.api.models import Strict
from gateway.api.operations import API, Call, Empty
from gateway.store.rule_versions import VersionRow

VersionId = Annotated[int, Field(ge=1, le=2**53)]
Comment = Annotated[str, StringConstraints(max_length=1000)]


class Version(BaseModel):
    """A rules version; ``yaml`` is empty in lists (read one version for its text)."""

    id: int
    active: bool
    author: str
    created_at: float
    comment: str
    source_hash: str
    activated_at: float | None
    yaml: str

    @classmethod
    def of(cls, row: VersionRow, active: int | None, *, text: bool) -> Version:
        return cls(
            id=row.id,
            active=row.id == active,
            author=row.author,
            created_at=row.created_at,
            comment=row.comment,
            source_hash=row.source_hash,
            activated_at=row.activated_at,
            yaml=row.yaml if text else "",
        )


class Versions(BaseModel):
    items: list[Version]


class Proposal(Strict):
    yaml: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]
    comment: Comment = ""


class Created(BaseModel):
    id: int


class DiffQuery(Strict):
    against: VersionId | None = None
    """The version to compare with (the active one by default)."""


class Diff(BaseModel):
    old: int
    new: int
    diff: str
    """A unified diff; empty when the texts agree."""


class ImpactRequest(Strict):
    last: Annotated[int, Field(ge=1, le=rules.MAX_REPLAY)] = 1000
    """How many of the newest audited requests to replay."""


class Judgement(BaseModel):
    allowed: bool
    reason: str
    steps: list[str]


class Change(BaseModel):
    request_id: str
    at: float
    caller: str
    method: str
    target: str
    active: Judgement
    draft: Judgement


class Impact(BaseModel):
    draft: int
    active: int
    replayed: int
    changes: list[Change]
    skipped: list[str]


class Activation(Strict):
    comment: Comment = ""


@API.get("/rules/versions", response=Versions)
async def list_versions(call: Call[Empty, Empty]) -> Versions | AdminError:
    """Rules versions, newest first, each marked whether it is the active one."""
    rows = await rules.list_versions(call.ctx)
    if isinstance(rows, AdminError):
        return rows
    active = await rules.active_version_id(call.ctx)
    return Versions(items=[Version.of(row, active, text=False) for row in rows])


@API.post("/rules/versions", body=Proposal, response=Created, status=201, errors=(409,))
async def propose_version(call: Call[Proposal, Empty]) -> Created | AdminError:
    """Validate and store a new, inactive version; 422 lists every problem with its line."""
    made = await rules.propose_version(call.ctx, call.body.yaml, call.body.comment)
    if isinstance(made, rules.RuleProblems):
        return AdminError(
            f"the rules have {len(made.problems)} problem(s); each is listed with its line",
            problems=tuple((p.line, p.message) for p in made.problems),
        )
    return made if isinstance(made, AdminError) else Created(id=made.id)


@API.get("/rules/versions/{version}", response=Version, integers=frozenset({"version"}))
async def read_version(call: Call[Empty, Empty]) -> Version | AdminError:
    """One version with its YAML (superadmins)."""
    row = await rules.get_version(call.ctx, call.path["version"])
    if isinstance(row, AdminError):
        return row
    return Version.of(row, await rules.active_version_id(call.ctx), text=True)


@API.get(
    "/rules/versions/{version}/diff",
    query=DiffQuery,
    response=Diff,
    integers=frozenset({"version"}),
)
async def diff_version(call: Call[Empty, DiffQuery]) -> Diff | AdminError:
    """A unified diff to this version from ``against`` (the active version by default)."""
    new = call.path["version"]
    old = call.query.against or await rules.active_version_id(call.ctx)
    if old is None:
        return AdminError("no version is active yet; give ?against=", "not-found")
    text = await rules.diff_versions(call.ctx, old, new)
    return text if isinstance(text, AdminError) else Diff(old=old, new=new, diff=text)


@API.post(
    "/rules/versions/{version}/impact",
    body=ImpactRequest,
    response=Impact,
    integers=frozenset({"version"}),
)
async def impact(call: Call[ImpactRequest, Empty]) -> Impact | AdminError:
    """Replay the newest audited requests against this version; every changed decision."""
    preview = await rules.impact_preview(call.ctx, call.path["version"], call.body.last)
    if isinstance(preview, AdminError):
        return preview
    return Impact(
        draft=preview.draft,
        active=preview.active,
        replayed=preview.replayed,
        changes=[
            Change(
                request_id=c.request_id,
                at=c.at,
                caller=c.caller,
                method=c.method,
                target=c.target,
                active=Judgement(
                    allowed=c.active.allowed, reason=c.active.reason, steps=list(c.active.steps)
                ),
                draft=Judgement(
                    allowed=c.draft.allowed, reason=c.draft.reason, steps=list(c.draft.steps)
                ),
            )
            for c in preview.changes
        ],
        skipped=list(preview.skipped),
    )


@API.post(
    "/rules/versions/{version}/activate",
    body=Activation,
    response=Version,
    integers=frozenset({"version"}),
    errors=(409,),
)
async def activate(call: Call[Activation, Empty]) -> Version | AdminError:
    """Make this version the one every gateway process runs; an older one is a rollback."""
    row = await rules.activate_version(call.ctx, call.path["version"], call.body.comment)
    if isinstance(row, AdminError):
        return row
    return Version.of(row, row.id, text=False)
