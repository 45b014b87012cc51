"""Reading the audit trail as an administrator: filter, page, one record, export.

The JSON API (``/.gatehold/api/audit``) and the admin UI (``/audit``) both ask here, so
a filter means the same everywhere. A tenant admin reads only the rows of their
tenants: asking for another tenant is refused (``forbidden``), and a record of another
tenant is answered as if it did not exist (``not-found``), so its seq reveals nothing.
An export is audited (``audit-exported``, with its filter) before its first row.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.store import audit_log
from gateway.store.audit_log import AuditFilter, AuditRow

DECISIONS = ("allow", "deny", "observed")
PAGE_SIZE_LIMIT = 500
FILTER_MAX = 320
"""The longest filter value (an e-mail address is at most 320 characters)."""
SAME_REQUEST_LIMIT = 50
"""At most this many other rows of one request id on a record's page."""


@dataclass(frozen=True, slots=True)
class AuditQuestion:
    """What an administrator asks of the trail, as typed; ``None`` means "any".

    The times are text (ISO-8601, UTC unless it says otherwise, or Unix seconds) so the
    answer to a bad one can name it; ``until`` is exclusive.
    """

    user: str | None = None
    tenant: str | None = None
    route: str | None = None
    decision: str | None = None
    kind: str | None = None
    request_id: str | None = None
    since: str | None = None
    until: str | None = None

    def asked(self) -> dict[str, str]:
        """The filters given, under the names the API and the UI use (``from``/``to``)."""
        names = {"since": "from", "until": "to", "request_id": "request"}
        return {
            names.get(f.name, f.name): value
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Rows newest first, and the cursor of the next (older) page, if any."""

    rows: list[AuditRow]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class AuditRecordView:
    """One record, its outcome and the other rows of its request."""

    row: AuditRow
    outcome: AuditRow | None
    """The ``outcome`` row of a request record (status, bytes, duration), if written."""
    same_request: list[AuditRow]
    """The other rows with this record's request id, oldest first."""


def audit_filter(actor: Admin, question: AuditQuestion) -> AuditFilter | AdminError:
    """The store filter for ``question``, narrowed to the tenants a tenant admin administers."""
    for name, value in question.asked().items():
        if len(value) > FILTER_MAX or "\x00" in value:
            return AdminError(f"{name}: at most {FILTER_MAX} characters, and no NUL character")
    since = instant(question.since, "from")
    if isinstance(since, AdminError):
        return since
    until = instant(question.until, "to")
    if isinstance(until, AdminError):
        return until
    if question.decision is not None and question.decision not in DECISIONS:
        return AdminError(f"decision: {question.decision!r} is neither allow nor deny")
    if question.tenant is not None and not actor.manages(question.tenant):
        return AdminError(
            f"{actor.name} does not administer tenant {question.tenant!r}", "forbidden"
        )
    return AuditFilter(
        since=since,
        until=until,
        actor=question.user,
        tenant=question.tenant,
        route=question.route,
        decision=question.decision,
        kind=question.kind,
        request_id=question.request_id,
        tenants=readable_tenants(actor),
    )


def readable_tenants(actor: Admin) -> frozenset[str] | None:
    """The tenants whose rows ``actor`` reads; ``None``: every row (a superadmin)."""
    return None if actor.superadmin else actor.tenants


def instant(value: str | None, name: str) -> float | None | AdminError:
    """Unix seconds from ISO-8601 (UTC unless it says otherwise) or a plain number."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return AdminError(f"{name}: {value!r} is neither ISO-8601 nor Unix seconds")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        return AdminError(f"{name}: {value!r} is not a finite time")
    return seconds


async def read_audit(
    ctx: AdminContext, question: AuditQuestion, *, limit: int = 100, cursor: int | None = None
) -> AuditPage | AdminError:
    """Up to ``limit`` matching rows older than ``cursor``, newest first."""
    where = audit_filter(ctx.actor, question)
    if isinstance(where, AdminError):
        return where
    limit = max(1, min(limit, PAGE_SIZE_LIMIT))
    rows = await audit_log.recent_rows(ctx.engine, where, limit=limit, before_seq=cursor)
    more = len(rows) == limit and rows[-1].seq > 1
    return AuditPage(rows, rows[-1].seq if more else None)


async def audit_record(ctx: AdminContext, seq: int) -> AuditRecordView | AdminError:
    """Record ``seq`` with its outcome and the other rows of its request.

    A record the actor may not read is ``not-found``, exactly like a missing one. The
    rows of the same request are those the actor reads, plus those with no tenant (the
    ``outcome`` of a request carries none): request ids are made by the gateway, so
    they never join a readable record to another person's request.
    """
    tenants = readable_tenants(ctx.actor)
    row = await audit_log.row_at(ctx.engine, seq, AuditFilter(tenants=tenants))
    if row is None:
        return AdminError(f"no audit record {seq} that you may read", "not-found")
    if not row.request_id:
        return AuditRecordView(row, None, [])
    visible = None if tenants is None else tenants | {""}
    siblings = await audit_log.recent_rows(
        ctx.engine,
        AuditFilter(request_id=row.request_id, tenants=visible),
        limit=SAME_REQUEST_LIMIT,
    )
    others = [r for r in reversed(siblings) if r.seq != row.seq]
    return AuditRecordView(row, _outcome_of(row, others), others)


def _outcome_of(row: AuditRow, others: list[AuditRow]) -> AuditRow | None:
    """The ``outcome`` row that refers to request record ``row`` (``data.ref_seq``)."""
    for other in others:
        if other.kind == "outcome" and json.loads(other.data).get("ref_seq") == row.seq:
            return other
    return None


async def export_audit(
    ctx: AdminContext, question: AuditQuestion, *, fmt: str
) -> AsyncIterator[str] | AdminError:
    """The matching rows as CSV or JSON lines, oldest first; the export is audited
    (``audit-exported`` with its format and filter) before this returns."""
    if fmt not in audit_log.EXPORT_FORMATS:
        return AdminError(f"format: {fmt!r} is not one of {', '.join(audit_log.EXPORT_FORMATS)}")
    where = audit_filter(ctx.actor, question)
    if isinstance(where, AdminError):
        return where
    await ctx.audit_event("audit-exported", format=fmt, filter=question.asked())
    return audit_log.export_rows(ctx.engine, fmt=fmt, where=where)
