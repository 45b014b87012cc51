"""The audit trail: filter, page back in time, read one record, export what is shown.

Every read goes through ``gateway.admin.audit_reading`` (the JSON API's code too), so a
tenant admin sees only their tenants' rows: asking for another tenant is refused with
403, and another tenant's record is a 404 like a missing one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.view import ADMIN_UI_PREFIX, Page, View
from gateway.admin import audit_reading
from gateway.admin.audit_reading import AuditQuestion
from gateway.admin.service import AdminError
from gateway.filenames import content_disposition
from gateway.store.audit_log import AuditRow

PAGE_SIZE = 50
FILTERS = ("user", "tenant", "route", "decision", "kind", "request", "from", "to")
"""The audit page's query parameters, in the order its links carry them."""
MEDIA = {"csv": "text/csv", "jsonl": "application/jsonl"}
COMMON_KINDS = (
    "request",
    "outcome",
    "login",
    "login-failed",
    "logout",
    "admin-ui",
    "admin-api",
    "audit-exported",
    "rejected",
    "rules-observing",
    "rules-observe-ended",
)


def audit_href(**filters: str | int) -> str:
    """The audit page filtered by ``filters`` (names of ``FILTERS``; ``from``/``to`` as
    ``since``/``until``), for links from other pages."""
    renamed = {"since": "from", "until": "to"}
    params = {renamed.get(k, k): str(v) for k, v in filters.items() if v != ""}
    return ADMIN_UI_PREFIX + "/audit" + ("?" + urlencode(params) if params else "")


def utc_text(ts: float) -> str:
    """A time as people read it here: UTC, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso_utc(ts: float) -> str:
    """A time as the filters take it (ISO-8601 with ``Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _typed(view: View) -> dict[str, str]:
    """The filters as typed (stripped), every one present, for the form to show again."""
    return {name: view.query(name).strip() for name in FILTERS}


def _question(typed: dict[str, str]) -> AuditQuestion:
    def given(name: str) -> str | None:
        return typed[name] or None

    return AuditQuestion(
        user=given("user"),
        tenant=given("tenant"),
        route=given("route"),
        decision=given("decision"),
        kind=given("kind"),
        request_id=given("request"),
        since=given("from"),
        until=given("to"),
    )


def _cursor(text: str) -> int | None | AdminError:
    if not text:
        return None
    if not text.isdecimal() or not 1 <= int(text) <= 2**62:
        return AdminError(f"cursor: {text!r} is not a record number (use the Older link)")
    return int(text)


def _field_named(error: AdminError) -> str:
    """The filter a refusal names first (``from: 'x' is neither…``), to mark it invalid."""
    name = error.message.split(":", 1)[0]
    return name if name in FILTERS else ""


def _filtered(typed: dict[str, str], **extra: str) -> str:
    """The query string of the current filter (and ``extra``), for links that keep it."""
    params = {name: value for name, value in typed.items() if value}
    params.update(extra)
    return urlencode(params)


async def audit_list(view: View) -> web.StreamResponse:
    typed = _typed(view)
    cursor = _cursor(view.query("cursor").strip())
    answer = (
        cursor
        if isinstance(cursor, AdminError)
        else await audit_reading.read_audit(
            view.ctx, _question(typed), limit=PAGE_SIZE, cursor=cursor
        )
    )
    context: dict[str, Any] = {
        "typed": typed,
        "kinds": COMMON_KINDS,
        "filtered": _filtered(typed),
        "older": "",
        "rows": [],
        "error": None,
        "when": utc_text,
        "paged": cursor is not None and not isinstance(cursor, AdminError),
        "invalid": "",
    }
    if isinstance(answer, AdminError):
        context["error"] = answer
        context["invalid"] = _field_named(answer)
        return view.page("audit.html", title="Audit trail", status=answer.status, **context)
    context["rows"] = answer.rows
    if answer.next_cursor is not None:
        context["older"] = _filtered(typed, cursor=str(answer.next_cursor))
    return view.page("audit.html", title="Audit trail", **context)


async def audit_detail(view: View) -> web.StreamResponse:
    seq = view.request.match_info["seq"]
    if not seq.isdecimal() or not 1 <= int(seq) <= 2**62:
        return view.refused(AdminError("There is no such audit record.", "not-found"))
    found = await audit_reading.audit_record(view.ctx, int(seq))
    if isinstance(found, AdminError):
        return view.refused(found, title="Not found")
    return view.page(
        "audit_detail.html",
        title=f"Audit record {found.row.seq}",
        record=found,
        row=found.row,
        data=_pretty(found.row),
        outcome=json.loads(found.outcome.data) if found.outcome else None,
        when=utc_text,
        request_href=audit_href(request=found.row.request_id) if found.row.request_id else "",
    )


def _pretty(row: AuditRow) -> str:
    return json.dumps(json.loads(row.data), indent=2, ensure_ascii=False, sort_keys=True)


async def audit_export(view: View) -> web.StreamResponse:
    """The current filter's rows as a download; the export itself is audited."""
    fmt = view.query("format", "csv")
    chunks = await audit_reading.export_audit(view.ctx, _question(_typed(view)), fmt=fmt)
    if isinstance(chunks, AdminError):
        return view.refused(chunks, title="Not exported")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{MEDIA[fmt]}; charset=utf-8",
            "Content-Disposition": content_disposition("attachment", f"audit.{fmt}"),
            "X-Request-Id": view.request_id,
        }
    )
    await response.prepare(view.request)
    async for chunk in chunks:
        await response.write(chunk.encode("utf-8", "backslashreplace"))
    await response.write_eof()
    return response


PAGES = (
    Page("GET", "/audit", audit_list),
    Page("GET", "/audit/export", audit_export),
    Page("GET", "/audit/{seq}", audit_detail),
)
