"""The tenant field of a write: it must name the tenant the request acts in.

An app that stores the row it is given stores ``"tenant": "globex"`` from an acme user,
and an update that changes the field moves the caller's row into another tenant. A
route's ``body_tenant`` names the field (``pointer`` in a JSON body, ``field`` in an
urlencoded form) and every value there must equal the request's tenant. Where the
field is absent it is added (``on_missing: set``: the body is re-serialised, the
forwarder sends its new length) or the request is refused (``refuse``).

The body is read as ``gateway.bodies`` reads every inspected body (UTF-8 only, no
byte-order mark, no repeated JSON key, bounded depth and size), and what is forwarded
is what was checked: the very bytes, or the re-serialised document. Another spelling
of the field (``Tenant``, ``tenant[]``, ``%74enant``, a ``;``-hidden key) is refused as
ambiguous, since some framework reads it as the field.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from gateway import bodies
from gateway.bodies import Body, BodyKind, MediaType
from gateway.jsonpointer import MISSING, WILDCARD, child, walk
from gateway.jsonpointer import parse as parse_pointer
from gateway.model import BodyTenant, IncomingRequest, Reason, Rejection
from gateway.params import (
    Unreadable,
    ambiguous_key,
    exact,
    fold_segment,
    name_from_key,
    parse_pairs,
    related,
    semicolon_keys,
)

BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
"""Methods whose requests carry no row when they carry no body: nothing to check."""

Checked = Body | bytes | None
"""What to forward: the body as read, a re-serialised one, or none."""


def mismatch(detail: str) -> Rejection:
    return Rejection(Reason.TENANT_MISMATCH, detail)


def _ambiguous(key: str) -> Rejection:
    return Rejection(
        Reason.PARAM_AMBIGUOUS,
        f"the body field {key[:60]!r} is another spelling of the tenant field",
    )


def check_body(
    spec: BodyTenant,
    request: IncomingRequest,
    method: str,
    body: Body | None,
    tenant: str,
) -> Checked | Rejection:
    """The body to forward, its tenant field checked (and set), or why it is refused.

    ``body`` is the request's body as already read, or ``None`` when none was sent.
    """
    if (body is None or body.size == 0) and method.upper() in BODILESS_METHODS:
        return body
    media = bodies.request_media_type(request)
    if isinstance(media, Rejection):
        return media
    if media is None:
        if body is None or body.size == 0:
            return mismatch("this route needs the request's tenant in a body")
        return bodies.unsupported("a body on this route needs a Content-Type")
    if (problem := bodies.charset_problem(media)) is not None:
        return problem
    data = body.content() if body is not None else b""
    if media.kind is BodyKind.JSON and spec.pointer is not None:
        return _json_body(spec, spec.pointer, body, data, media, tenant)
    if media.kind is BodyKind.FORM and spec.field is not None:
        return _form_body(spec, spec.field, body, data, media, tenant)
    takes = " or ".join(
        kind for kind, given in (("JSON", spec.pointer), ("urlencoded forms", spec.field)) if given
    )
    return bodies.unsupported(f"this route takes {takes} bodies")


def _json_body(
    spec: BodyTenant,
    pointer: str,
    body: Body | None,
    data: bytes,
    media: MediaType,
    tenant: str,
) -> Checked | Rejection:
    document = bodies.parse_json(data, media) if data else {}
    if isinstance(document, Rejection):
        return document
    tokens = parse_pointer(pointer)
    variant = _json_variant(document, tokens)
    if variant is not None:
        return _ambiguous(variant)
    missing = False
    for value in walk(document, tokens):
        if value is MISSING:
            missing = True
        elif value != tenant:
            return mismatch(_names_another(pointer, value))
    if not missing:
        return body
    if not spec.set_missing:
        return mismatch(f"the body has no {pointer} naming the request's tenant")
    if not _set_missing(document, tokens, tenant):
        return bodies.invalid(f"the body has no place for {pointer}")
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return bodies.invalid("the JSON body holds a number that cannot be written back")
    return text.encode()


def _names_another(where: str, value: Any) -> str:
    """The refusal's words: the value is not repeated (a refusal echoes nothing the
    client sent, so no answer ever carries another tenant's name)."""
    kind = "another tenant" if isinstance(value, str) and value else "no tenant"
    return f"{where} names {kind}, not the request's tenant"


def _set_missing(node: Any, tokens: tuple[str, ...], tenant: str) -> bool:
    """Put ``tenant`` at every place ``tokens`` name that ``node`` lacks.

    Objects on the way are created; ``False`` when a place cannot be made (an array
    where a member is named, a ``*`` over something that is not an array).
    """
    token, rest = tokens[0], tokens[1:]
    if token == WILDCARD and isinstance(node, list):
        return all(_set_missing(item, rest, tenant) for item in node) if rest else False
    if not isinstance(node, dict) or token == WILDCARD:
        found = child(node, token)
        return found is not MISSING and bool(rest) and _set_missing(found, rest, tenant)
    if not rest:
        node.setdefault(token, tenant)
        return True
    if token not in node:
        node[token] = {}
    return _set_missing(node[token], rest, tenant)


def _json_variant(document: Any, tokens: tuple[str, ...]) -> str | None:
    """A key on the way to the field spelled differently (case, spaces): Go's decoder,
    among others, reads ``"Tenant"`` as ``tenant``."""
    nodes = [document]
    for token in tokens:
        folded = fold_segment(token)
        following: list[Any] = []
        for node in nodes:
            if isinstance(node, list) and token == WILDCARD:
                following.extend(node)
            elif isinstance(node, dict):
                for key, value in node.items():
                    if key == token:
                        following.append(value)
                    elif fold_segment(key) == folded:
                        return str(key)
        nodes = following
    return None


def _form_body(
    spec: BodyTenant,
    field: str,
    body: Body | None,
    data: bytes,
    media: MediaType,
    tenant: str,
) -> Checked | Rejection:
    text = bodies.decode_text(data, media)
    if isinstance(text, Rejection):
        return text
    try:
        pairs = parse_pairs(text)
    except Unreadable:
        return bodies.invalid("the form is not valid UTF-8 after percent-decoding")
    name = name_from_key(field)
    for key, value in pairs:
        if key == "_charset_" and value.strip().lower() not in ("utf-8", "utf8", "us-ascii"):
            return bodies.unsupported("the form names a charset other than UTF-8")
    for key in semicolon_keys(text):
        if related(key, name):
            return _ambiguous(f";{key}")
    hidden = ambiguous_key((key for key, _ in pairs), [name])
    if hidden is not None:
        return _ambiguous(hidden)
    values = [value for key, value in pairs if exact(key, name)]
    for value in values:
        if value != tenant:
            return mismatch(_names_another(field, value))
    if values:
        return body
    if not spec.set_missing:
        return mismatch(f"the form has no field {field!r} naming the request's tenant")
    added = f"{quote(field, safe='')}={quote(tenant, safe='')}".encode()
    return data + b"&" + added if data and not data.endswith(b"&") else data + added
