"""``/access-requests``: the queue of access requests into the admin's tenants.

Waiting requests come first, oldest first (they have waited longest), each with two
forms: approve (the role to grant, preselected with the one asked for) and decline (an
optional reason, mailed to the requester). Decided requests follow, newest first.

Every read and change is ``gateway.admin.access``: it lists only the admin's tenants,
answers any other request id "not found" and audits each decision with its state before
and after. A refused decision shows the queue again with the reason and what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin_ui.clock_text import iso_time, shown_time
from admin_ui.view import Page, View
from gateway.admin import access, service
from gateway.admin.service import AdminError
from gateway.store.access_requests import AccessRequestRow

QUEUE = "/access-requests"
DECIDED_SHOWN = 50
"""The newest decided requests the page lists (the audit keeps every one)."""
REFUSED_AS_A_PAGE = frozenset({"not-found", "forbidden"})
"""Codes that mean "not yours or not there": a refusal page, never the queue."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A decision the service refused, and what the admin had typed into its form."""

    request_id: int
    error: AdminError
    role: str = ""
    comment: str = ""


async def queue(view: View) -> web.StreamResponse:
    return await _queue_page(view)


async def _queue_page(view: View, refusal: Refusal | None = None) -> web.Response:
    tenant = view.query("tenant").strip() or None
    rows = await access.list_access_requests(view.ctx, state=None, tenant=tenant)
    if isinstance(rows, AdminError):
        return view.refused(rows)
    decided = sorted(
        (row for row in rows if row.state != "pending"),
        key=lambda row: (row.decided_at or 0.0, row.id),
        reverse=True,
    )
    tenants = [row.id for row in await service.list_tenants(view.ctx)]
    return view.page(
        "access_requests.html",
        status=refusal.error.status if refusal else 200,
        title="Access requests",
        pending=[row for row in rows if row.state == "pending"],
        decided=decided[:DECIDED_SHOWN],
        decided_total=len(decided),
        roles=access.approvable_roles(view.ctx),
        tenants=tenants,
        tenant=tenant or "",
        refusal=refusal,
        when=shown_time,
        iso=iso_time,
    )


def _request_id(view: View) -> int:
    """The id in the address (the route admits 1 to 18 digits only)."""
    return int(view.request.match_info["request_id"])


async def _not_decided(view: View, refusal: Refusal) -> web.Response:
    if refusal.error.code in REFUSED_AS_A_PAGE:
        return view.refused(refusal.error)
    return await _queue_page(view, refusal)


async def approve(view: View) -> web.StreamResponse:
    request_id = _request_id(view)
    role = str((await view.form()).get("role", "")).strip()
    done = await access.approve_access_request(view.ctx, request_id, role)
    if isinstance(done, AdminError):
        return await _not_decided(view, Refusal(request_id, done, role=role))
    return _back_to_queue(view, _approved(done))


async def decline(view: View) -> web.StreamResponse:
    request_id = _request_id(view)
    comment = str((await view.form()).get("comment", ""))
    done = await access.decline_access_request(view.ctx, request_id, comment)
    if isinstance(done, AdminError):
        return await _not_decided(view, Refusal(request_id, done, comment=comment))
    return _back_to_queue(view, f"Declined {done.email}'s request for {done.tenant}.")


def _back_to_queue(view: View, notice: str) -> web.Response:
    """The queue again, as filtered when the form was sent (its address keeps the filter)."""
    tenant = view.query("tenant").strip()
    return view.see_other(QUEUE, notice=notice, **({"tenant": tenant} if tenant else {}))


def _approved(row: AccessRequestRow) -> str:
    return (
        f"Approved: {row.email} now holds {row.granted_role} in {row.tenant} "
        "(they sign in again to use it)."
    )


PAGES = (
    Page("GET", QUEUE, queue),
    Page("POST", QUEUE + r"/{request_id:\d{1,18}}/approve", approve),
    Page("POST", QUEUE + r"/{request_id:\d{1,18}}/decline", decline),
)
