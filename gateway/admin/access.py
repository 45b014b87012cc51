"""Access requests: a person refused at the gateway asks; the tenant's admins decide.

``request_access`` is the one workflow a person who administers nothing calls (from the
page the "Request access" link opens): the context's actor is the requester. The other
workflows are an admin's and see only requests into tenants the actor manages; any other
id is answered "not found", exactly like an id that does not exist.

Approving grants the membership through ``service.add_user`` (so the person's sessions
end and the grant is audited as every other grant is), marks the request approved and
mails the requester; declining mails them too. Every step is audited.
"""

from __future__ import annotations

import logging
import unicodedata
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from gateway.admin import service
from gateway.admin.service import AdminContext, AdminError
from gateway.model import GLOBAL_TENANT, Membership
from gateway.store import access_requests as request_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.access_requests import STATES, AccessRequestRow
from gateway.tenant_ids import TENANT_ID

log = logging.getLogger("gatehold.access")

WHAT_MAX = 500
"""Longest "what do you need" (a path or a short description)."""
WHY_MAX = 2000
"""Longest "why": a few paragraphs."""
COMMENT_MAX = 2000
HOUR = 3600.0

__all__ = [
    "AccessRequestRow",
    "approvable_roles",
    "approve_access_request",
    "decline_access_request",
    "get_access_request",
    "list_access_requests",
    "request_access",
]


def stored_text(value: str, *, field: str, limit: int, required: bool = True) -> str | AdminError:
    """``value`` trimmed, or why it cannot be stored (empty, too long, control characters)."""
    text = value.strip()
    if required and not text:
        return AdminError(f"say {field}")
    if len(text) > limit:
        return AdminError(f"{field}: at most {limit} characters, please ({len(text)} given)")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        return AdminError(f"{field}: remove the control characters")
    return text


async def _open_tenant(ctx: AdminContext, tenant: str) -> str | AdminError:
    """The tenant to ask into. Unknown and deactivated tenants get one answer."""
    slug = tenant.strip().lower()
    refused = AdminError(
        f"tenant {tenant.strip()!r} takes no access requests (there is no such tenant, "
        "or it is deactivated)",
        "not-found",
    )
    if slug == GLOBAL_TENANT or not TENANT_ID.fullmatch(slug):
        return refused
    row = await tenant_store.get_tenant(ctx.engine, slug)
    return slug if row is not None and row.active else refused


async def request_access(
    ctx: AdminContext,
    *,
    user_id: int,
    tenant: str,
    what: str,
    why: str,
    role: str | None = None,
) -> AccessRequestRow | AdminError:
    """Put a signed-in person's request for access to ``tenant`` in its admins' queue.

    Refused: unknown or deactivated tenants; a role the person holds there already (or,
    naming no role, a tenant they belong to already); empty or oversized text; a second
    request into the same tenant while one waits; more than
    ``access_requests.max_pending_per_person`` waiting or ``per_person_per_hour`` made
    in the last hour (``code="rate-limited"``, audited as ``access-request-refused``).
    """
    user = await user_store.get_user(ctx.engine, user_id)
    if user is None or not user.active:
        return AdminError("only an active, signed-in person asks for access", "forbidden")
    checked = await _checked_request(ctx, tenant=tenant, what=what, why=why, role=role)
    if isinstance(checked, AdminError):
        return checked
    slug, wanted, what_text, why_text = checked
    held = [m.role for m in user.memberships if m.tenant == slug]
    if wanted is not None and wanted in held:
        return AdminError(f"you hold {wanted} in {slug} already")
    if wanted is None and held:
        return AdminError(
            f"you belong to {slug} already (as {', '.join(held)}); name the role you need"
        )
    flooded = await _flooded(ctx, user_id, slug)
    if flooded is not None:
        await ctx.audit_event(
            "access-request-refused", tenant=slug, subject=user.email, why=flooded.message
        )
        return flooded
    request_id = await request_store.create_request(
        ctx.engine,
        user_id=user.id,
        tenant=slug,
        role_wanted=wanted,
        what=what_text,
        why=why_text,
        now=ctx.clock(),
    )
    row = service._present(await request_store.get_request(ctx.engine, request_id))
    await ctx.audit_event(
        "access-requested",
        tenant=slug,
        subject=user.email,
        request=request_id,
        before=None,
        after=_state(row),
    )
    return row


async def _checked_request(
    ctx: AdminContext, *, tenant: str, what: str, why: str, role: str | None
) -> tuple[str, str | None, str, str] | AdminError:
    """(tenant, role, what, why) as they will be stored, or the first problem."""
    what_text = stored_text(what, field="what you need access to", limit=WHAT_MAX)
    if isinstance(what_text, AdminError):
        return what_text
    why_text = stored_text(why, field="why you need it", limit=WHY_MAX)
    if isinstance(why_text, AdminError):
        return why_text
    wanted = (role or "").strip() or None
    if wanted is not None and wanted not in ctx.roles:
        return AdminError(f"unknown role {wanted!r}; choose one of {', '.join(sorted(ctx.roles))}")
    if wanted in ctx.global_roles:
        return AdminError(f"{wanted} reaches every tenant and is not granted on request")
    slug = await _open_tenant(ctx, tenant)
    if isinstance(slug, AdminError):
        return slug
    return slug, wanted, what_text, why_text


async def _flooded(ctx: AdminContext, user_id: int, tenant: str) -> AdminError | None:
    limits = ctx.access_requests
    mine = await request_store.list_requests(ctx.engine, user_id=user_id, state="pending")
    if any(row.tenant == tenant for row in mine):
        return AdminError(
            f"you asked for access to {tenant} already; its admins have not decided yet",
            "rate-limited",
        )
    if len(mine) >= limits.max_pending_per_person:
        return AdminError(
            f"you have {len(mine)} requests waiting for a decision; wait for one first",
            "rate-limited",
        )
    recent = await request_store.count_requests(ctx.engine, user_id, since=ctx.clock() - HOUR)
    if recent >= limits.per_person_per_hour:
        return AdminError(
            f"at most {limits.per_person_per_hour} access requests an hour; try again later",
            "rate-limited",
        )
    return None


async def list_access_requests(
    ctx: AdminContext, *, state: str | None = "pending", tenant: str | None = None
) -> list[AccessRequestRow] | AdminError:
    """Requests into the tenants the actor manages (one of them if ``tenant`` is given),
    oldest first; ``state=None`` lists every state."""
    if state is not None and state not in STATES:
        return AdminError(f"state {state!r}: use one of {', '.join(STATES)}")
    if tenant is not None and not ctx.actor.manages(tenant):
        return service._forbidden(ctx.actor, tenant)
    tenants = None if ctx.actor.superadmin else ctx.actor.tenants
    if tenant is not None:
        tenants = frozenset({tenant})
    return await request_store.list_requests(ctx.engine, tenants=tenants, state=state)


async def get_access_request(ctx: AdminContext, request_id: int) -> AccessRequestRow | AdminError:
    """One request into a tenant the actor manages; any other id is not found."""
    row = await request_store.get_request(ctx.engine, request_id)
    if row is None or not ctx.actor.manages(row.tenant):
        return AdminError(f"no access request {request_id}", "not-found")
    return row


def approvable_roles(ctx: AdminContext) -> list[str]:
    """The roles the actor may grant by approving a request, by name: every role the rules
    define, but one that reaches every tenant only for a superadmin (as ``approve`` checks)."""
    return sorted(r for r in ctx.roles if ctx.actor.superadmin or r not in ctx.global_roles)


async def _pending(ctx: AdminContext, request_id: int) -> AccessRequestRow | AdminError:
    row = await get_access_request(ctx, request_id)
    if isinstance(row, AdminError) or row.state == "pending":
        return row
    return AdminError(f"access request {request_id} was {row.state} already by {row.decided_by}")


async def approve_access_request(
    ctx: AdminContext, request_id: int, role: str | None = None
) -> AccessRequestRow | AdminError:
    """Grant the requester ``role`` (default: the role they asked for) in the request's
    tenant, mark the request approved and mail them."""
    row = await _pending(ctx, request_id)
    if isinstance(row, AdminError):
        return row
    chosen = (role or "").strip() or row.role_wanted
    if chosen is None:
        return AdminError(f"request {request_id} names no role: choose the role to grant")
    user = await user_store.get_user(ctx.engine, row.user_id)
    if user is None or not user.active:
        return AdminError(f"{row.email} is deactivated; decline the request instead")
    if chosen in ctx.global_roles and not ctx.actor.superadmin:
        return AdminError(
            f"{chosen} reaches every tenant: only a superadmin grants it", "forbidden"
        )
    grant = Membership(row.tenant, chosen)
    if grant in user.memberships:
        return AdminError(f"{row.email} holds {chosen} in {row.tenant} already; decline instead")
    refused = await service._check_grants(ctx, [grant])
    if refused is not None:
        return refused
    decided = await request_store.decide(
        ctx.engine,
        request_id,
        state="approved",
        by=ctx.actor.name,
        at=ctx.clock(),
        granted_role=chosen,
    )
    if not decided:
        return await _pending_or_gone(ctx, request_id)
    granted = await service.add_user(ctx, row.email, [grant])
    if isinstance(granted, AdminError):  # the checks above passed: only a race gets here
        return granted
    after = service._present(await request_store.get_request(ctx.engine, request_id))
    mailed = await _mail(
        ctx,
        after,
        subject=f"Your access request for {row.tenant} was approved",
        body=f"You now hold the role {chosen} in {row.tenant}. Sign in again to use it.",
    )
    await _audit_decision(ctx, "access-request-approved", row, after, mailed=mailed)
    return after


async def decline_access_request(
    ctx: AdminContext, request_id: int, comment: str = ""
) -> AccessRequestRow | AdminError:
    """Decline a request (with an optional comment the requester is mailed)."""
    row = await _pending(ctx, request_id)
    if isinstance(row, AdminError):
        return row
    text = stored_text(comment, field="the comment", limit=COMMENT_MAX, required=False)
    if isinstance(text, AdminError):
        return text
    decided = await request_store.decide(
        ctx.engine, request_id, state="declined", by=ctx.actor.name, at=ctx.clock(), comment=text
    )
    if not decided:
        return await _pending_or_gone(ctx, request_id)
    after = service._present(await request_store.get_request(ctx.engine, request_id))
    note = f"\n\nThe administrator wrote:\n{text}" if text else ""
    mailed = await _mail(
        ctx,
        after,
        subject=f"Your access request for {row.tenant} was declined",
        body=f"Your request for access to {row.tenant} was declined.{note}",
    )
    await _audit_decision(ctx, "access-request-declined", row, after, mailed=mailed)
    return after


async def _pending_or_gone(ctx: AdminContext, request_id: int) -> AdminError:
    """Someone else decided between our read and our write."""
    row = await _pending(ctx, request_id)
    return row if isinstance(row, AdminError) else AdminError("try again", "invalid")


async def _audit_decision(
    ctx: AdminContext,
    kind: str,
    before: AccessRequestRow,
    after: AccessRequestRow,
    *,
    mailed: bool,
) -> None:
    await ctx.audit_event(
        kind,
        tenant=after.tenant,
        subject=after.email,
        request=after.id,
        before=_state(before),
        after=_state(after),
        mailed=mailed,
    )


def _state(row: AccessRequestRow) -> dict[str, Any]:
    return {
        "state": row.state,
        "role_wanted": row.role_wanted,
        "what": row.what,
        "granted_role": row.granted_role,
        "decided_by": row.decided_by,
        "comment": row.comment,
    }


async def _mail(ctx: AdminContext, row: AccessRequestRow, *, subject: str, body: str) -> bool:
    """Tell the requester; a mail that cannot be sent does not undo the decision."""
    if ctx.mailer is None:
        return False
    message = EmailMessage()
    message["From"] = ctx.sender
    message["To"] = row.email
    message["Subject"] = subject
    message.set_content(
        f"{body}\n\nYou asked for: {row.what}\n(request {row.id}, decided by {row.decided_by})\n"
    )
    try:
        await ctx.mailer.send(message)
    except (OSError, aiosmtplib.SMTPException) as error:
        log.warning("could not mail %s about access request %s: %s", row.email, row.id, error)
        return False
    return True
