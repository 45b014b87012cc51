"""``/access-requests``, ``/reviews`` and ``/invites``: who gets in, and who still should.

Over ``gateway/admin/access.py``, ``reviews.py`` and ``invites.py``; a tenant admin sees
and decides only their own tenants' (another tenant's ids answer 404).
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints

from gateway.admin import access, invites, reviews
from gateway.admin.reviews import ReviewRow
from gateway.admin.service import AdminError
from gateway.api.models import Grant, Name, Strict, Text, User
from gateway.api.operations import API, Call, Empty
from gateway.filenames import content_disposition
from gateway.model import Membership
from gateway.store.access_requests import AccessRequestRow
from gateway.store.access_reviews import AttestationRow

Comment = Annotated[str, StringConstraints(max_length=1000)]
ID = frozenset({"request"})


class AccessRequest(BaseModel):
    id: int
    email: str
    tenant: str
    role_wanted: str | None
    what: str
    why: str
    created_at: float
    state: Literal["pending", "approved", "declined"]
    decided_by: str | None
    decided_at: float | None
    granted_role: str | None

    @classmethod
    def of(cls, row: AccessRequestRow) -> AccessRequest:
        return cls(
            id=row.id,
            email=row.email,
            tenant=row.tenant,
            role_wanted=row.role_wanted,
            what=row.what,
            why=row.why,
            created_at=row.created_at,
            state=row.state,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            granted_role=row.granted_role,
        )


class AccessRequests(BaseModel):
    items: list[AccessRequest]


class RequestsQuery(Strict):
    state: Literal["pending", "approved", "declined", "all"] = "pending"
    tenant: Name | None = None


class Approval(Strict):
    role: Name | None = None
    """The role to grant (the one asked for by default)."""


class Decline(Strict):
    comment: Comment = ""


class Member(BaseModel):
    email: str
    roles: list[str]
    last_activity: float | None
    idle: bool
    active: bool

    @classmethod
    def of(cls, row: ReviewRow) -> Member:
        return cls(
            email=row.email,
            roles=list(row.roles),
            last_activity=row.last_activity,
            idle=row.idle,
            active=row.active,
        )


class Attestation(BaseModel):
    id: int
    tenant: str
    reviewer: str
    at: float
    comment: str

    @classmethod
    def of(cls, row: AttestationRow) -> Attestation:
        return cls(
            id=row.id, tenant=row.tenant, reviewer=row.reviewer, at=row.at, comment=row.comment
        )


class Review(BaseModel):
    tenant: str
    idle_days: int | None
    members: list[Member]
    attestations: list[Attestation]
    """Newest first."""


class ReviewQuery(Strict):
    idle_days: int | None = Field(default=None, ge=1, le=3650)


class Attest(Strict):
    comment: Comment = ""


class Invite(Strict):
    email: Text
    memberships: list[Grant] = Field(min_length=1, max_length=50)
    valid_days: int = Field(default=3, ge=1, le=14)
    display_name: Text = ""


# ---------------------------------------------------------------- access requests


@API.get("/access-requests", query=RequestsQuery, response=AccessRequests)
async def list_requests(call: Call[Empty, RequestsQuery]) -> AccessRequests | AdminError:
    """Access requests into the caller's tenants, oldest first (pending by default)."""
    state = None if call.query.state == "all" else call.query.state
    rows = await access.list_access_requests(call.ctx, state=state, tenant=call.query.tenant)
    if isinstance(rows, AdminError):
        return rows
    return AccessRequests(items=[AccessRequest.of(row) for row in rows])


@API.post(
    "/access-requests/{request}/approve",
    body=Approval,
    response=AccessRequest,
    integers=ID,
    errors=(409,),
)
async def approve(call: Call[Approval, Empty]) -> AccessRequest | AdminError:
    """Grant the membership (the requester's sessions end, they are mailed)."""
    row = await access.approve_access_request(call.ctx, call.path["request"], call.body.role)
    return row if isinstance(row, AdminError) else AccessRequest.of(row)


@API.post(
    "/access-requests/{request}/decline",
    body=Decline,
    response=AccessRequest,
    integers=ID,
    errors=(409,),
)
async def decline(call: Call[Decline, Empty]) -> AccessRequest | AdminError:
    """Decline the request (the requester is mailed, with the comment)."""
    row = await access.decline_access_request(call.ctx, call.path["request"], call.body.comment)
    return row if isinstance(row, AdminError) else AccessRequest.of(row)


# ---------------------------------------------------------------- access reviews


@API.get("/reviews/{tenant}", query=ReviewQuery, response=Review, errors=(404,))
async def review(call: Call[Empty, ReviewQuery]) -> Review | AdminError:
    """A tenant's members x roles x last activity, idle ones flagged, and its attestations."""
    tenant = call.path["tenant"]
    rows = await reviews.review_tenant(call.ctx, tenant, call.query.idle_days)
    if isinstance(rows, AdminError):
        return rows
    attested = await reviews.list_attestations(call.ctx, tenant)
    if isinstance(attested, AdminError):
        return attested
    return Review(
        tenant=tenant,
        idle_days=call.query.idle_days,
        members=[Member.of(row) for row in rows],
        attestations=[Attestation.of(row) for row in attested],
    )


@API.post("/reviews/{tenant}/attest", body=Attest, response=Attestation, status=201, errors=(404,))
async def attest(call: Call[Attest, Empty]) -> Attestation | AdminError:
    """Record "reviewed by <caller> at <now>" for the tenant."""
    row = await reviews.attest_review(call.ctx, call.path["tenant"], call.body.comment)
    return row if isinstance(row, AdminError) else Attestation.of(row)


@API.delete("/reviews/{tenant}/members/{email}", response=User, errors=(404,))
async def revoke(call: Call[Empty, Empty]) -> User | AdminError:
    """Remove every role the person holds in the tenant, in one step; their sessions end."""
    row = await reviews.revoke_member(call.ctx, call.path["tenant"], call.path["email"])
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.get(
    "/reviews/{tenant}/export",
    query=ReviewQuery,
    response=None,
    errors=(404,),
    streams={"text/csv": "the review for auditors, one member per line (audited)"},
)
async def export_review(call: Call[Empty, ReviewQuery]) -> web.StreamResponse | AdminError:
    """The review as CSV (the export is audited)."""
    tenant = call.path["tenant"]
    text = await reviews.export_review_csv(call.ctx, tenant, call.query.idle_days)
    if isinstance(text, AdminError):
        return text
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": content_disposition("attachment", f"review-{tenant}.csv"),
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------- invites


@API.post("/invites", body=Invite, response=User, status=201, errors=(404, 409))
async def invite(call: Call[Invite, Empty]) -> User | AdminError:
    """Grant the memberships and mail the person a sign-in link (invited until they use it)."""
    grants = [Membership(g.tenant, g.role) for g in call.body.memberships]
    row = await invites.invite_user(
        call.ctx,
        call.body.email,
        grants,
        valid_for=call.body.valid_days * 86400.0,
        display_name=call.body.display_name,
    )
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)
