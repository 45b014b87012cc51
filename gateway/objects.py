"""Object ids a matched request names: path, query, JSON body pointers, form fields.

Every id found must pass its declared type before any resolver sees it; a body is
read only for routes that look inside it, and then forwarded exactly as read.
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.bodies import BodyStalled, BodyTooLarge, RequestBody
from gateway.jsonpointer import pointer_values
from gateway.model import IdSource, IdSpec, ObjectRef, Reason, Rejection, RouteMatch

_INT = re.compile(r"[0-9]{1,18}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


@dataclass(frozen=True, slots=True)
class Extracted:
    """The ids of one request, and its body when it had to be read to find them."""

    refs: tuple[ObjectRef, ...]
    body: bytes | None


@functools.lru_cache(maxsize=256)
def _pattern(id_type: str) -> re.Pattern[str]:
    if id_type == "int":
        return _INT
    if id_type == "uuid":
        return _UUID
    if id_type.startswith("regex:"):
        return re.compile(id_type.removeprefix("regex:"))
    return _SLUG


def check_id(value: str, id_type: str) -> bool:
    """Whether ``value`` is a well-formed id of ``id_type`` (int, uuid, slug, regex:…)."""
    return _pattern(id_type).fullmatch(value) is not None


class ObjectExtractor:
    """Finds and type-checks every object id of a request."""

    def __init__(
        self,
        *,
        max_inspect_bytes: int = 1024 * 1024,
        body_idle_timeout: float = 10.0,
        body_total_timeout: float = 120.0,
    ) -> None:
        self._max = max_inspect_bytes
        self._idle = body_idle_timeout
        self._total = body_total_timeout

    async def extract(self, request: web.Request, match: RouteMatch) -> Extracted | Rejection:
        """All ids in rule order (duplicates removed), or why the request is malformed."""
        specs = match.route.ids
        body: bytes | None = None
        needs_body = any(s.source in (IdSource.BODY, IdSource.FORM) for s in specs)
        if needs_body:
            read = await self._read_body(request)
            if isinstance(read, Rejection):
                return read
            body = read
        refs: list[ObjectRef] = []
        for spec in specs:
            values = self._values(spec, request, match, body)
            if isinstance(values, Rejection):
                return values
            for value in values:
                if not check_id(value, spec.id_type):
                    return Rejection(
                        Reason.ID_INVALID, f"{spec.label} is not a valid {spec.id_type} id"
                    )
                refs.append(ObjectRef(spec.type, value, spec.label))
        return Extracted(tuple(dict.fromkeys(refs)), body)

    async def _read_body(self, request: web.Request) -> bytes | Rejection:
        if request.content_length is not None and request.content_length > self._max:
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        reader = RequestBody(
            request, limit=self._max, idle=self._idle, deadline=time.monotonic() + self._total
        )
        try:
            whole = await reader.prefetch(self._max + 1)
        except BodyTooLarge:
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        except BodyStalled:
            return Rejection(Reason.BODY_TIMEOUT, "the request body stopped arriving")
        if whole is None:  # cannot happen: past the limit, prefetch raises
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        return whole

    def _values(
        self, spec: IdSpec, request: web.Request, match: RouteMatch, body: bytes | None
    ) -> list[str] | Rejection:
        match spec.source:
            case IdSource.PATH:
                return [match.params[spec.key]]
            case IdSource.QUERY:
                return list(request.rel_url.query.getall(spec.key, []))
            case IdSource.BODY:
                return _json_ids(spec, body or b"", request.content_type)
            case IdSource.FORM:
                return _form_ids(spec, body or b"", request.content_type)


def _json_ids(spec: IdSpec, body: bytes, content_type: str) -> list[str] | Rejection:
    if not body:
        return []
    if "json" not in content_type:
        return Rejection(Reason.BODY_INVALID, "this route expects a JSON body")
    try:
        document = json.loads(body)
    except ValueError:
        return Rejection(Reason.BODY_INVALID, "the JSON body could not be parsed")
    values = []
    for value in pointer_values(document, spec.key):
        if isinstance(value, bool) or not isinstance(value, int | str):
            if value is None:
                continue
            return Rejection(Reason.ID_INVALID, f"{spec.label} must be a string or an integer")
        values.append(str(value))
    return values


def _form_ids(spec: IdSpec, body: bytes, content_type: str) -> list[str] | Rejection:
    if not body:
        return []
    if content_type != "application/x-www-form-urlencoded":
        return Rejection(Reason.BODY_INVALID, "this route expects a urlencoded form")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return Rejection(Reason.BODY_INVALID, "the form body could not be parsed")
    if any(name == "_method" for name, _ in fields):
        return Rejection(Reason.BODY_INVALID, "method override fields are not accepted")
    return [value for name, value in fields if name == spec.key]
