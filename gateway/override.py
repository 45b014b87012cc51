"""Method overrides: a POST whose body says ``_method=DELETE`` is a DELETE to the app.

Rails (``Rack::MethodOverride``), Laravel and Symfony run a POST as the method named
by a ``_method`` field of its form (Laravel also of its JSON). Authorizing the POST
while the app runs DELETE would let anyone who may write delete. So before routing,
a POST with a body the app may read parameters from (urlencoded, multipart, JSON, or
no Content-Type, which Rack reads as a form) is read — bounded by the route's
``max_body``, spooled to disk past 1 MiB — and, if it holds ``_method``, routed,
decided and audited as that method. The app still gets the POST and the very bytes
read here. Ambiguity is refused: two values, a method other than PUT, PATCH or
DELETE, another spelling of ``_method``, a body that cannot be read as the app will.

Only POST is read: frameworks override nothing else, and GET/HEAD keep their fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from gateway import bodies, multipart
from gateway.audit import request_entry
from gateway.bodies import Body, BodyKind, MediaType
from gateway.model import (
    Anonymous,
    AuditEntry,
    IncomingRequest,
    Principal,
    Reason,
    Rejection,
    RouteMatch,
    Target,
)
from gateway.params import fold_segment, name_from_key, related, semicolon_keys
from gateway.routing import Router

FIELD = "_method"
OVERRIDABLE = frozenset({"PUT", "PATCH", "DELETE"})
_NAME = name_from_key(FIELD)
_READ = frozenset({BodyKind.FORM, BodyKind.MULTIPART, BodyKind.JSON})

OverrideMode = Literal["follow", "refuse"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """The method a request is routed and decided as, and the body read to learn it."""

    method: str
    """The method the app will run (the override, else the request's own)."""
    body: Body | None = None
    """The body, when it was read here; it is forwarded exactly as read."""
    overridden: str | None = None
    """The method on the wire (``POST``) when the body overrode it."""


_AS_SENT = {
    method: Prepared(method) for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
}


def _refuse(detail: str) -> Rejection:
    return Rejection(Reason.METHOD_OVERRIDE_INVALID, detail)


class MethodOverrides:
    """Finds the method the app will run for a POST, before routing is final."""

    def __init__(
        self,
        router: Router,
        *,
        mode: OverrideMode = "follow",
        body_idle_timeout: float = 10.0,
        body_total_timeout: float = 120.0,
    ) -> None:
        self._router = router
        self._mode = mode
        self._idle = body_idle_timeout
        self._total = body_total_timeout

    async def prepare(
        self, request: IncomingRequest, target: Target, principal: Principal | Anonymous | Rejection
    ) -> Prepared | Rejection:
        """``Prepared`` with the method to decide as, or why the override is refused."""
        if request.method != "POST" or not request.body_exists:
            return _AS_SENT.get(request.method) or Prepared(request.method)
        routes = self._router.routes_for(target)
        if not routes or not (isinstance(principal, Principal) or any(r.public for r in routes)):
            return Prepared("POST")  # refused anyway: no route, or nobody signed in
        media = bodies.request_media_type(request)
        if isinstance(media, Rejection):
            return media
        if media is not None and media.kind not in _READ:
            return Prepared("POST")
        if media is not None and (problem := bodies.charset_problem(media)):
            return problem
        posted = self._router.match(target, "POST")
        if isinstance(posted, RouteMatch):
            limit = posted.route.max_body_bytes
        else:  # POST may be a method this path only has through an override
            limit = max(r.max_body_bytes for r in routes)
        body = await bodies.read_body(request, limit, idle=self._idle, total=self._total)
        if isinstance(body, Rejection):
            return body
        prepared = self._decide(body, media)
        if isinstance(prepared, Prepared) and prepared.overridden:
            final = self._router.match(target, prepared.method)
            if isinstance(final, RouteMatch) and body.size > final.route.max_body_bytes:
                return Rejection(
                    Reason.BODY_TOO_LARGE, "the request body exceeds this route's limit"
                )
        return prepared

    def _decide(self, body: Body, media: MediaType | None) -> Prepared | Rejection:
        values = _override_values(body, media)
        if isinstance(values, Rejection):
            return values
        if not values:
            return Prepared("POST", body)
        if self._mode == "refuse":
            return _refuse("method overrides ('_method') are not accepted by this gateway")
        methods = {value.upper() for value in values}
        if len(methods) > 1:
            return _refuse("the body names more than one '_method'")
        method = methods.pop()
        if method not in OVERRIDABLE:
            return _refuse("'_method' may only name PUT, PATCH or DELETE")
        return Prepared(method, body, overridden="POST")


def _override_values(body: Body, media: MediaType | None) -> list[str] | Rejection:
    """Every ``_method`` value in the body, or why the body is ambiguous."""
    if body.size == 0:
        return []
    kind = media.kind if media is not None else BodyKind.FORM
    if kind is BodyKind.MULTIPART and media is not None:
        fields = multipart.parse_fields(body.view(), media, lambda name: related(name, _NAME))
        return fields if isinstance(fields, Rejection) else _field_values(fields)
    if kind is BodyKind.JSON:
        document = bodies.parse_json(body.content(), media)
        return document if isinstance(document, Rejection) else _json_values(document)
    data = body.content()
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return bodies.invalid("the body starts with a byte-order mark")
    # Only the key '_method' and its ASCII value matter here, and they read the same in
    # every ASCII-compatible charset: an upload sent as a form need not be UTF-8.
    text = data.decode("latin-1")
    pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    if any(related(key, _NAME) for key in semicolon_keys(text)):
        return _ambiguous()
    return _field_values(pairs)


def _ambiguous() -> Rejection:
    return Rejection(
        Reason.PARAM_AMBIGUOUS, "the body holds another spelling of '_method', or hides one"
    )


def _field_values(fields: Sequence[tuple[str, str]]) -> list[str] | Rejection:
    values = []
    for key, value in fields:
        if key == FIELD:
            values.append(value)
        elif related(key, _NAME):
            return _ambiguous()
    return values


def _json_values(document: Any) -> list[str] | Rejection:
    if not isinstance(document, dict):
        return []
    values = []
    for key, value in document.items():
        if key == FIELD:
            if not isinstance(value, str):
                return _refuse("'_method' must be a string")
            values.append(value)
        elif fold_segment(key) == FIELD:
            return _ambiguous()
    return values


def with_override(prepared: Prepared | Rejection | None, **entry: Any) -> AuditEntry:
    """The request's audit entry, noting the method on the wire when the body overrode it."""
    record = request_entry(**entry)
    if isinstance(prepared, Prepared) and prepared.overridden:
        record.data["method_override"] = prepared.overridden
    return record
