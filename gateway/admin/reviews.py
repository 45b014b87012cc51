"""Access reviews: who holds what in a tenant, who has gone quiet, and who reviewed it.

``review_tenant`` lists the tenant's members with their roles and last activity (the
newest ``last_seen`` of any of their sessions, or SSO sign-in), flagging those idle
longer than ``idle_days`` or never seen. ``revoke_member`` withdraws every role a person
holds in the tenant in one step (their sessions end); ``attest_review`` stores and audits
"reviewed by X at T"; ``export_review_csv`` is the auditors' copy (itself audited).

A tenant admin reviews only their tenants: any other tenant, existing or not, is refused
with the same answer. Only a superadmin reviews global grants (tenant ``*``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.admin import service
from gateway.admin.access import COMMENT_MAX, stored_text
from gateway.admin.service import AdminContext, AdminError
from gateway.model import GLOBAL_TENANT
from gateway.store import access_reviews as review_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.access_reviews import AttestationRow
from gateway.store.users import UserRow

DAY = 86400.0
CSV_COLUMNS = ("tenant", "email", "roles", "last_activity", "idle", "last_attestation")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

__all__ = [
    "AttestationRow",
    "ReviewRow",
    "attest_review",
    "export_review_csv",
    "list_attestations",
    "review_tenant",
    "revoke_member",
]


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One member of a tenant, as an access review shows them."""

    email: str
    roles: tuple[str, ...]
    """Every role they hold in the tenant."""
    last_activity: float | None
    """Unix seconds of their newest activity; ``None`` if never seen."""
    idle: bool
    """No activity within the review's idle days (or never)."""
    active: bool
    """``False`` for a deactivated account (which grants nothing already)."""


async def _reviewable(ctx: AdminContext, tenant: str) -> AdminError | None:
    """``None`` if the actor may review ``tenant`` and it exists (deactivated ones too)."""
    if not ctx.actor.manages(tenant):
        return service._forbidden(ctx.actor, tenant)
    if tenant != GLOBAL_TENANT and await tenant_store.get_tenant(ctx.engine, tenant) is None:
        return AdminError(f"no tenant {tenant!r}", "not-found")
    return None


def _idle_days(ctx: AdminContext, idle_days: int | None) -> int | AdminError:
    days = ctx.reviews.idle_days if idle_days is None else idle_days
    if not 1 <= days <= 3650:
        return AdminError(f"idle days {days}: give a number of days from 1 to 3650")
    return days


async def review_tenant(
    ctx: AdminContext, tenant: str, idle_days: int | None = None
) -> list[ReviewRow] | AdminError:
    """The tenant's members × roles × last activity, by email; idle ones flagged.

    ``idle_days`` defaults to the ``reviews.idle_days`` setting.
    """
    refused = await _reviewable(ctx, tenant)
    if refused is not None:
        return refused
    days = _idle_days(ctx, idle_days)
    if isinstance(days, AdminError):
        return days
    members = await _members(ctx, tenant)
    seen = await review_store.last_activity(ctx.engine, [m.id for m in members])
    cutoff = ctx.clock() - days * DAY
    return [
        ReviewRow(
            email=member.email,
            roles=tuple(m.role for m in member.memberships if m.tenant == tenant),
            last_activity=seen.get(member.id),
            idle=seen.get(member.id, 0.0) < cutoff,
            active=member.active,
        )
        for member in members
    ]


async def _members(ctx: AdminContext, tenant: str) -> list[UserRow]:
    found = []
    for user_id in await tenant_store.member_ids(ctx.engine, tenant):
        user = await user_store.get_user(ctx.engine, user_id)
        if user is not None:
            found.append(user)
    return sorted(found, key=lambda u: u.email)


async def revoke_member(ctx: AdminContext, tenant: str, email: str) -> UserRow | AdminError:
    """Withdraw every role ``email`` holds in ``tenant`` at once; their sessions end now.

    A person who is no member of the tenant is "not found", like one who does not exist.
    """
    refused = await _reviewable(ctx, tenant)
    if refused is not None:
        return refused
    address = service._address(email)
    if isinstance(address, AdminError):
        return address
    before = await user_store.get_user_by_email(ctx.engine, address)
    if before is None or not any(m.tenant == tenant for m in before.memberships):
        return AdminError(f"no member {address!r} in {tenant}", "not-found")
    await user_store.remove_tenant_memberships(ctx.engine, before.id, tenant)
    after = service._present(await user_store.get_user(ctx.engine, before.id))
    ended = await ctx.revoke(before.id)
    await ctx.audit_event(
        "member-revoked",
        tenant=tenant,
        subject=address,
        before=service._user_state(before),
        after=service._user_state(after),
        sessions=ended,
        via="access-review",
    )
    return after


async def attest_review(
    ctx: AdminContext, tenant: str, comment: str = ""
) -> AttestationRow | AdminError:
    """Store and audit "reviewed by <actor> at <now>" for ``tenant``."""
    refused = await _reviewable(ctx, tenant)
    if refused is not None:
        return refused
    text = stored_text(comment, field="the comment", limit=COMMENT_MAX, required=False)
    if isinstance(text, AdminError):
        return text
    earlier = await review_store.list_attestations(ctx.engine, tenant)
    members = await _members(ctx, tenant)
    at = ctx.clock()
    attestation_id = await review_store.add_attestation(
        ctx.engine, tenant=tenant, reviewer=ctx.actor.name, at=at, comment=text
    )
    row = AttestationRow(attestation_id, tenant, ctx.actor.name, at, text)
    await ctx.audit_event(
        "access-review-attested",
        tenant=tenant,
        attestation=attestation_id,
        reviewer=ctx.actor.name,
        at=_iso(at),
        comment=text,
        members=len(members),
        before=None if not earlier else _attestation_state(earlier[0]),
        after=_attestation_state(row),
    )
    return row


async def list_attestations(ctx: AdminContext, tenant: str) -> list[AttestationRow] | AdminError:
    """The tenant's attestations, newest first."""
    refused = await _reviewable(ctx, tenant)
    if refused is not None:
        return refused
    return await review_store.list_attestations(ctx.engine, tenant)


async def export_review_csv(
    ctx: AdminContext, tenant: str, idle_days: int | None = None
) -> str | AdminError:
    """The review as CSV for auditors (columns ``CSV_COLUMNS``); audited as exported."""
    rows = await review_tenant(ctx, tenant, idle_days)
    if isinstance(rows, AdminError):
        return rows
    attestations = await review_store.list_attestations(ctx.engine, tenant)
    last = f"{attestations[0].reviewer} at {_iso(attestations[0].at)}" if attestations else ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        when = "" if row.last_activity is None else _iso(row.last_activity)
        cells = (tenant, row.email, " ".join(row.roles), when, str(row.idle).lower(), last)
        writer.writerow([_cell(cell) for cell in cells])
    await ctx.audit_event("access-review-exported", tenant=tenant, members=len(rows))
    return out.getvalue()


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attestation_state(row: AttestationRow) -> dict[str, str]:
    return {"reviewer": row.reviewer, "at": _iso(row.at), "comment": row.comment}
