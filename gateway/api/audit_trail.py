"""``/audit``: read the audit trail page by page, or export it (the export is audited).

The filters and the reading are the admin service's (``gateway.admin.audit_reading``),
shared with the admin UI; a tenant admin reads only the rows of their tenants.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin import audit_reading
from gateway.admin.audit_reading import AuditQuestion
from gateway.admin.service import AdminError
from gateway.api.models import AuditFilters, AuditPage, AuditQuery, AuditRecord, ExportQuery
from gateway.api.operations import API, Call, Empty
from gateway.filenames import content_disposition

MEDIA = {"csv": "text/csv", "jsonl": "application/jsonl"}


@API.get("/audit", query=AuditQuery, response=AuditPage)
async def read_audit(call: Call[Empty, AuditQuery]) -> AuditPage | AdminError:
    """Audit rows, newest first, at most ``limit`` per page."""
    query = call.query
    page = await audit_reading.read_audit(
        call.ctx, question(query), limit=query.limit, cursor=query.cursor
    )
    if isinstance(page, AdminError):
        return page
    return AuditPage(items=[AuditRecord.of(row) for row in page.rows], next_cursor=page.next_cursor)


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
    chunks = await audit_reading.export_audit(call.ctx, question(query), fmt=query.format)
    if isinstance(chunks, AdminError):
        return chunks
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{MEDIA[query.format]}; charset=utf-8",
            "Content-Disposition": content_disposition("attachment", f"audit.{query.format}"),
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(call.request)
    async for chunk in chunks:
        await response.write(chunk.encode("utf-8", "backslashreplace"))
    await response.write_eof()
    return response


def question(query: AuditFilters) -> AuditQuestion:
    """The API's query parameters as the admin service's question."""
    return AuditQuestion(
        user=query.user,
        tenant=query.tenant,
        route=query.route,
        decision=query.decision,
        since=query.since,
        until=query.until,
    )
