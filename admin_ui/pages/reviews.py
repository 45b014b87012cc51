"""``/reviews``: an access review of one tenant, and its attestations.

``/reviews`` picks the tenant (a tenant admin of one tenant goes straight to it);
``/reviews/<tenant>`` lists its members x roles x last activity with idle accounts
flagged by the service's rule (no activity for ``reviews.idle_days``, or never), a
revoke button per member, the "mark reviewed" form and the past attestations.
``/reviews/<tenant>/export.csv`` is the auditors' copy.

Everything is ``gateway.admin.reviews``, which refuses a tenant the admin does not
manage (existing or not) with one answer and audits every change before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from admin_ui.clock_text import iso_time, shown_time
from admin_ui.view import Page, View
from gateway.admin import reviews, service
from gateway.admin.service import AdminError
from gateway.filenames import content_disposition
from gateway.model import GLOBAL_TENANT

IDLE_DAYS_DIGITS = 4
REFUSED_AS_A_PAGE = frozenset({"not-found", "forbidden"})


@dataclass(frozen=True, slots=True)
class Typed:
    """What the admin typed into the page's forms (shown again after a refusal)."""

    idle_days: str = ""
    comment: str = ""
    error: AdminError | None = None


def review_path(tenant: str) -> str:
    """The review page of ``tenant``, below the UI's prefix."""
    return "/reviews/" + quote(tenant, safe="")


async def _reviewable_tenants(view: View) -> list[tuple[str, str]]:
    """(id, label) of every tenant the admin reviews; global grants for a superadmin."""
    found = [
        (row.id, row.display_name if row.active else f"{row.display_name} (deactivated)")
        for row in await service.list_tenants(view.ctx)
    ]
    if view.admin.superadmin:
        found.append((GLOBAL_TENANT, "Global grants (every tenant)"))
    return found


async def pick_tenant(view: View) -> web.StreamResponse:
    picked = view.query("tenant").strip()
    tenants = await _reviewable_tenants(view)
    if not picked and len(tenants) == 1:
        picked = tenants[0][0]
    if picked:
        return view.see_other(review_path(picked))
    return view.page("review_pick.html", title="Access reviews", tenants=tenants)


def _idle_days(text: str) -> int | None | AdminError:
    """The idle days typed into the page; ``None`` (the setting) when left empty."""
    text = text.strip()
    if not text:
        return None
    if not text.isdecimal() or len(text) > IDLE_DAYS_DIGITS:
        return AdminError(f"idle days {text!r}: give a number of days from 1 to 3650")
    return int(text)


async def _review_page(view: View, tenant: str, typed: Typed) -> web.Response:
    error = typed.error
    days = _idle_days(typed.idle_days)
    if isinstance(days, AdminError):
        error, days = error or days, None
    members = await reviews.review_tenant(view.ctx, tenant, days)
    if isinstance(members, AdminError) and members.code not in REFUSED_AS_A_PAGE:
        error, days = error or members, None  # days out of range: show the setting's
        members = await reviews.review_tenant(view.ctx, tenant)
    if isinstance(members, AdminError):
        return view.refused(members)
    attestations = await reviews.list_attestations(view.ctx, tenant)
    if isinstance(attestations, AdminError):
        return view.refused(attestations)
    return view.page(
        "review.html",
        status=error.status if error else 200,
        title=f"Access review of {tenant}",
        tenant=tenant,
        tenant_path=review_path(tenant),
        tenants=await _reviewable_tenants(view),
        members=members,
        idle_days=days or view.ctx.reviews.idle_days,
        default_idle_days=view.ctx.reviews.idle_days,
        attestations=attestations,
        typed=typed,
        error=error,
        when=shown_time,
        iso=iso_time,
    )


def _tenant(view: View) -> str:
    return view.request.match_info["tenant"]


async def review(view: View) -> web.StreamResponse:
    return await _review_page(view, _tenant(view), Typed(idle_days=view.query("idle_days")))


async def revoke(view: View) -> web.StreamResponse:
    tenant = _tenant(view)
    email = str((await view.form()).get("email", ""))
    done = await reviews.revoke_member(view.ctx, tenant, email)
    if isinstance(done, AdminError):
        if done.code == "forbidden":
            return view.refused(done)
        return await _review_page(view, tenant, Typed(error=done))
    notice = f"Revoked every role of {done.email} in {tenant}; their sessions ended."
    return view.see_other(review_path(tenant), notice=notice)


async def attest(view: View) -> web.StreamResponse:
    tenant = _tenant(view)
    comment = str((await view.form()).get("comment", ""))
    done = await reviews.attest_review(view.ctx, tenant, comment)
    if isinstance(done, AdminError):
        if done.code in REFUSED_AS_A_PAGE:
            return view.refused(done)
        return await _review_page(view, tenant, Typed(comment=comment, error=done))
    notice = f"Marked reviewed: {tenant}, by {done.reviewer} at {shown_time(done.at)}."
    return view.see_other(review_path(tenant), notice=notice)


async def export_csv(view: View) -> web.StreamResponse:
    tenant = _tenant(view)
    text = await reviews.export_review_csv(view.ctx, tenant)
    if isinstance(text, AdminError):
        return view.refused(text)
    name = "global" if tenant == GLOBAL_TENANT else tenant
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": content_disposition("attachment", f"review-{name}.csv"),
            "Cache-Control": "no-store",
        },
    )


PAGES = (
    Page("GET", "/reviews", pick_tenant),
    Page("GET", "/reviews/{tenant}", review),
    Page("GET", "/reviews/{tenant}/export.csv", export_csv),
    Page("POST", "/reviews/{tenant}/revoke", revoke),
    Page("POST", "/reviews/{tenant}/attest", attest),
)
