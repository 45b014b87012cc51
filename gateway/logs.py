"""Structured logs on stderr: one configuration of the root logger, and the access line.

``configure`` installs one handler on the root logger (JSON objects or ``key=value``
text, one record per line) the first time a gateway process starts; calling it again
changes nothing. Every module keeps logging through ``logging.getLogger``; fields a
record carries in ``extra`` become fields of its line.

The access line is written once per request after its answer is sent (aiohttp's
access-log hook, ``AccessLine``), whether the pipeline, a gateway page or the HTTP
parser answered. What only the audit knows — the request id, the caller, the route,
the decision and its reason — reaches it through ``note_audited``, which the audit
writer calls with each entry it is given: the entry lands on a note held in a context
variable and belongs to the task that made it; each request runs in a task of its
own, so a note is never read for another request. Nothing is built for a line the
access logger's level leaves out.

No line carries a secret: not the query string (magic-link tokens travel there), no
header but a well-formed client ``X-Request-Id``, no cookie or key. Session ids appear
only as the audit's hash, which is not a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from gateway import __version__
from gateway.config.settings import Settings
from gateway.ingress import new_request_id
from gateway.model import AuditEntry

ACCESS_LOG = logging.getLogger("gatehold.access")
"""The logger of access lines: at WARNING only failed upstreams and 5xx answers are
written; above it, none, and they cost nothing."""

CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")
"""A client's ``X-Request-Id`` kept in the access line: short, printable, no spaces."""

UPSTREAM_FAILURES = frozenset(
    {"upstream-refused", "upstream-timeout", "upstream-invalid", "upstream-reset"}
)
"""Refusal reasons that mean the upstream failed: their access line is a warning too."""

_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_HANDLER_NAME = "gatehold"


@dataclass(slots=True)
class AccessNote:
    """What the audit said about the request being answered (a page that writes no
    audit record leaves ``caller`` empty: unknown, not anonymous)."""

    task: object = None
    """The request's task: the note of another (or of start-up code whose context the
    server's tasks copied) is never this request's."""
    request_id: str = ""
    caller: str = ""
    client: str = ""
    route: str = ""
    decision: str = ""
    reason: str = ""


_NOTE: ContextVar[AccessNote | None] = ContextVar("gatehold_access_note", default=None)
_noting = False
"""Set by ``configure`` when access lines are on; until then ``note_audited`` is free."""


def current_note() -> AccessNote | None:
    """What the audit said about the request this task answers, if anything."""
    note = _NOTE.get()
    return note if note is not None and note.task is asyncio.current_task() else None


def note_audited(entry: AuditEntry) -> None:
    """Keep what ``entry`` says about the current request for its access line."""
    if not _noting:
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop: not a request
        return
    note = _NOTE.get()
    if note is None or note.task is not task:
        note = AccessNote(task=task)
        _NOTE.set(note)
    if entry.request_id and not note.request_id:
        note.request_id = entry.request_id
    if entry.actor and note.caller in ("", "anonymous"):
        note.caller = entry.actor
    if entry.kind == "outcome":
        if entry.reason:
            note.reason = entry.reason
        return
    if entry.route:
        note.route = entry.route
    if entry.decision:
        note.decision = entry.decision
    if entry.reason and (entry.kind in ("request", "rejected") or not note.reason):
        note.reason = entry.reason
    client = entry.data.get("client")
    if isinstance(client, str) and client:
        note.client = client


def note_refused(reason: str) -> None:
    """The current request was refused after its entry was noted, because that entry
    could not be committed: its access line says ``deny`` and ``reason``, not the
    decision the entry held."""
    note = current_note() if _noting else None
    if note is not None:
        note.decision, note.reason = "deny", reason


class AccessLine(AbstractAccessLogger):
    """aiohttp's access-log hook: one line per answered request."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.WARNING)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        note = current_note() or AccessNote()
        status = response.status
        level = logging.INFO
        if note.reason in UPSTREAM_FAILURES or status >= 500:
            level = logging.WARNING
        if not self.logger.isEnabledFor(level):
            return
        # A request the parser refused has no path worth repeating: it is the input
        # that was refused.
        refused = note.reason == "request-malformed"
        path = "" if refused else request.rel_url.raw_path
        fields: dict[str, Any] = {
            "request_id": note.request_id
            or response.headers.get("X-Request-Id")
            or new_request_id(),
            "client": note.client or request.remote or "",
            "caller": note.caller,
            "method": "" if refused else request.method,
            "path": path,
            "route": note.route or _page_name(path),
            "decision": note.decision or ("deny" if note.reason else ""),
            "reason": note.reason,
            "status": status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 3),
        }
        theirs = request.headers.get("X-Request-Id", "")
        if theirs and CLIENT_REQUEST_ID.fullmatch(theirs):
            fields["client_request_id"] = theirs
        # Built here rather than by ``logger.log``, which walks the stack for the
        # caller's file and line: the access line's place is always this one.
        logger = self.logger
        logger.handle(
            logger.makeRecord(
                logger.name, level, __file__, 0, "access", (), None, extra={"fields": fields}
            )
        )


def _page_name(path: str) -> str:
    """``gatehold`` for the gateway's own pages, which the audit may not describe."""
    return "gatehold" if path.startswith("/.gatehold/") else ""


_RAW_CONTROLS = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0))}
"""DEL and the C1 controls, which JSON may carry raw but a terminal would act on."""


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields_of(record))
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = type(record.exc_info[1]).__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False).translate(_RAW_CONTROLS)


class KeyValueText(logging.Formatter):
    """``time level logger message key=value…``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record.created),
            record.levelname.lower(),
            record.name,
            json.dumps(record.getMessage(), ensure_ascii=False),
        ]
        parts += [f"{key}={_text_value(value)}" for key, value in _fields_of(record).items()]
        text = " ".join(parts)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(*, format: Literal["json", "text"], level: str) -> None:
    """Send every record at ``level`` and above to stderr, once per process."""
    global _noting
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonLines() if format == "json" else KeyValueText())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Schema migrations at start are routine; their steps are not worth a line each.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    _noting = ACCESS_LOG.isEnabledFor(logging.WARNING)


def start_fields(settings: Settings, rules_version: int, workers: int) -> dict[str, Any]:
    """The start line's fields; the store is named by its backend only (a DSN can hold a
    password)."""
    server = settings.server
    listeners = [f"http://{server.host}:{server.port}"]
    if server.admin_port:
        listeners.append(f"http://{server.host}:{server.admin_port} (admin)")
    return {
        "version": __version__,
        "pid": os.getpid(),
        "listeners": listeners,
        "public_url": server.public_url,
        "store": settings.store_dsn.split(":", 1)[0].split("+", 1)[0],
        "rules_version": rules_version,
        "workers": workers,
    }


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key == "fields" and isinstance(value, dict):
            fields.update(value)
        elif key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    return fields


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Quoted (with escapes) unless plainly printable: a raw ESC or CR from any field
    # would otherwise reach the reader's terminal or split the line.
    plain = text.isprintable() and re.fullmatch(r"[^\s\"=]+", text)
    return text if plain else json.dumps(text)


_second: list[Any] = [None, ""]
"""The last whole second formatted, and its text: most lines share their second."""


def _timestamp(created: float) -> str:
    second = int(created)
    if _second[0] != second:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{int((created - second) * 1000):03d}Z"
