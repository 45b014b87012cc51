"""Response guard: a second line of defence when the app behind leaks other tenants' data.

Only routes with ``guard:`` are inspected, and there every answer is, whatever its
status: an error page can carry rows as well as a list can. The body is read to its
end (up to ``max_bytes``) and must be a JSON object or array; anything else — HTML,
a bare string, duplicate keys that two parsers would read differently, an answer too
large to check — is refused (fail closed). Only answers that carry no body pass
unread: 204, 304, answers to HEAD, and redirects or errors whose body is empty.

* A 2xx answer: the values at the guard's pointer must all be the request's tenant,
  and a place the pointer names but the answer lacks counts as foreign (its shape
  changed). ``block`` refuses such an answer; ``filter`` drops the foreign elements of
  the array the pointer's first ``*`` walks.
* Any other status (both modes): an error has no agreed shape, so the values the
  pointer finds must be the tenant's, and so must every member anywhere in the body
  named like the pointer's last token (``tenant`` for ``/items/*/tenant``). A foreign
  one refuses the answer; an error that names no tenant passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp

from gateway.jsonpointer import MISSING, WILDCARD, child, parse, walk
from gateway.model import (
    Decision,
    GuardMode,
    GuardSpec,
    Reason,
    Rejection,
    RouteMatch,
    UpstreamReply,
)

CHUNK = 64 * 1024
BODILESS = frozenset({204, 304})


def foreign_values(document: Any, pointer: str, tenant: str | None) -> list[Any]:
    """Values at ``pointer`` (``*`` walks arrays) that are not ``tenant``; missing counts."""
    return [v for v in walk(document, parse(pointer)) if tenant is None or v != tenant]


def foreign_in_error(document: Any, pointer: str, tenant: str | None) -> bool:
    """Whether an error body holds a value at ``pointer``, or a member named like its
    last token anywhere, that is not ``tenant``."""
    tokens = parse(pointer)
    found = [v for v in walk(document, tokens) if v is not MISSING]
    if tokens and tokens[-1] != WILDCARD:
        found.extend(_members_named(document, tokens[-1]))
    return any(tenant is None or value != tenant for value in found)


def _members_named(node: Any, name: str) -> Iterator[Any]:
    """The value of every object member called ``name``, at any depth."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if name in current:
                yield current[name]
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def filter_foreign(document: Any, pointer: str, tenant: str | None) -> Any:
    """``document`` with foreign elements removed from the array at the first ``*``."""
    tokens = parse(pointer)
    star = tokens.index(WILDCARD)  # ValueError when the pointer walks no array
    container = document
    for token in tokens[:star]:
        container = child(container, token)
    if not isinstance(container, list):
        raise ValueError("the guarded field is not a list")
    rest = tokens[star + 1 :]
    container[:] = [
        item
        for item in container
        if not any(tenant is None or v != tenant for v in walk(item, rest))
    ]
    return document


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; ``ValueError`` for anything but one object or array.

    Duplicate member names are refused: parsers disagree on which one wins, so the
    guard could check one value while the client reads another. So is nesting deeper
    than the parser's recursion limit.
    """
    try:
        document = json.loads(body, object_pairs_hook=_unique_members)
    except RecursionError:
        raise ValueError("the answer is nested too deeply") from None
    if not isinstance(document, dict | list):
        raise ValueError("the answer is not a JSON object or array")
    return document


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member names")
    return members


class ResponseGuard:
    """Checks every answer of a guarded route against the request's tenant."""

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._max = max_bytes

    async def check(
        self, reply: UpstreamReply, *, match: RouteMatch, decision: Decision
    ) -> UpstreamReply | Rejection:
        guard = match.route.guard
        response = reply.response
        if guard is None or response is None:
            return reply
        if reply.status in BODILESS or response.method == "HEAD":
            return reply  # no body by definition: nothing to leak, nothing forwarded
        try:
            body = await _read_to_end(response, self._max)
        finally:
            response.release()
        if body is None:
            return Rejection(Reason.GUARD_BLOCKED, "the answer is too large to check")
        if not body and not 200 <= reply.status < 300:
            # An empty redirect or error carries no data; an empty 2xx on a guarded
            # route is a changed shape and refused below.
            return UpstreamReply(
                reply.status, reply.reason, reply.headers, None, b"", reply.upstream
            )
        try:
            document = parse_json(body)
        except ValueError:  # includes UnicodeDecodeError
            return Rejection(Reason.GUARD_BLOCKED, "the answer could not be checked")
        checked = _inspect(document, body, guard, decision.tenant, ok=200 <= reply.status < 300)
        if isinstance(checked, Rejection):
            return checked
        return UpstreamReply(
            reply.status, reply.reason, reply.headers, None, checked, reply.upstream
        )


def _inspect(
    document: Any, body: bytes, guard: GuardSpec, tenant: str | None, *, ok: bool
) -> bytes | Rejection:
    """The body to send on, or why the answer is refused."""
    if not ok:
        if foreign_in_error(document, guard.tenant_field, tenant):
            return Rejection(Reason.GUARD_BLOCKED, "the answer held another tenant's data")
        return body
    if guard.mode is GuardMode.BLOCK:
        if foreign_values(document, guard.tenant_field, tenant):
            return Rejection(Reason.GUARD_BLOCKED, "the answer held another tenant's data")
        return body
    try:
        filtered = filter_foreign(document, guard.tenant_field, tenant)
    except (ValueError, TypeError, KeyError):
        return Rejection(Reason.GUARD_BLOCKED, "the answer could not be filtered")
    return json.dumps(filtered).encode()


async def _read_to_end(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or ``None`` once it is longer than ``limit``."""
    if response.content_length is not None and response.content_length > limit:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
