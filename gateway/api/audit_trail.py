"""``/audit``: read the audit trail page by page, or export it (the export is audited).

A tenant admin reads only the rows of their tenants.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aiohttp import web

from gateway.admin.service import Admin, AdminError
from gateway.api.models import AuditFilters, AuditPage, AuditQuery, AuditRecord, ExportQuery
from gateway.api.operations import API, Call, Empty
from gateway.store import audit_log
from gateway.store.audit_log import AuditFilter

MEDIA = {"csv": "text/csv", "jsonl": "application/jsonl"}


@API.get("/audit", query=AuditQuery, response=AuditPage)
async def read_audit(call: Call[Empty, AuditQuery]) -> AuditPage | AdminError:
    """Audit rows, newest first, at most ``limit`` per page."""
    query = call.query
    where = audit_filter(call.ctx.actor, query)
    if isinstance(where, AdminError):
        return where
    rows = await audit_log.recent_rows(
        call.ctx.engine, where, limit=query.limit, before_seq=query.cursor
    )
    more = len(rows) == query.limit and rows[-1].seq > 1
    return AuditPage(
        items=[AuditRecord.of(row) for row in rows],
        next_cursor=rows[-1].seq if more else None,
    )


@API.get(
    "/audit/export",
    query=ExportQuery,
    response=None,
    streams={
        "text/csv": "CSV with a header line (cells a spreadsheet would run get a leading ')",
        "application/jsonl": "one JSON object per line",
    },
)
async def export_audit(call: Call[Empty, ExportQuery]) -> web.StreamResponse | AdminError:
    """Every matching row as CSV or JSON lines, oldest first (the export itself is audited)."""
    query = call.query
    where = audit_filter(call.ctx.actor, query)
    if isinstance(where, AdminError):
        return where
    await call.ctx.audit_event(
        "audit-exported",
        format=query.format,
        filter=query.model_dump(by_alias=True, exclude_none=True, exclude={"format"}),
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{MEDIA[query.format]}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit.{query.format}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(call.request)
    async for chunk in audit_log.export_rows(
        call.ctx.engine,
        fmt=query.format,
        since=where.since,
        until=where.until,
        actor=where.actor,
        tenant=where.tenant,
        route=where.route,
        decision=where.decision,
        tenants=where.tenants,
    ):
        await response.write(chunk.encode("utf-8", "backslashreplace"))
    await response.write_eof()
    return response


def audit_filter(actor: Admin, query: AuditFilters) -> AuditFilter | AdminError:
    """The store filter for ``query``, narrowed to the tenants a tenant admin administers."""
    since = instant(query.since, "from")
    until = instant(query.until, "to")
    for parsed in (since, until):
        if isinstance(parsed, AdminError):
            return parsed
    if query.tenant is not None and not actor.manages(query.tenant):
        return AdminError(f"{actor.name} does not administer tenant {query.tenant!r}", "forbidden")
    return AuditFilter(
        since=since if isinstance(since, float) else None,
        until=until if isinstance(until, float) else None,
        actor=query.user,
        tenant=query.tenant,
        route=query.route,
        decision=query.decision,
        tenants=None if actor.superadmin else actor.tenants,
    )


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
