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
  the array (or members of the object) the pointer's first ``*`` walks.
* Any other status (both modes): an error has no agreed shape, so the values the
  pointer finds must be the tenant's, and so must every member anywhere in the body
  named like the pointer's last token (``tenant`` for ``/items/*/tenant``). A foreign
  one refuses the answer; an error that names no tenant passes.
* ``fields``: every member of the object(s) ``at`` names that is not allowed is removed
  (counts, next-page tokens, facets). On a 2xx answer a place ``at`` names must be an
  object, else the shape changed and the answer is refused; an error is stripped where
  it has such an object and otherwise left to the tenant check.

An answer the guard changed is re-serialised; the headers that describe the old bytes
(``ETag``, digests) are dropped and the relay sets the new length. What the guard found
and did goes to the request's audit outcome as a ``GuardReport``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from multidict import CIMultiDict

from gateway.jsonpointer import MISSING, WILDCARD, child, parse, walk
from gateway.model import (
    Decision,
    GuardMode,
    GuardReport,
    GuardSpec,
    Reason,
    Rejection,
    RouteMatch,
    UpstreamReply,
)

CHUNK = 64 * 1024
BODILESS = frozenset({204, 304})
STALE_WHEN_CHANGED = ("ETag", "Content-MD5", "Digest", "Content-Digest", "Repr-Digest")
"""Headers that describe the upstream's bytes, wrong once the guard changed them."""
MAX_NAMES_AUDITED = 20
MAX_NAME_LENGTH = 64


def foreign_values(document: Any, pointer: str, tenant: str | None) -> list[Any]:
    """Values at ``pointer`` (``*`` walks arrays) that are not ``tenant``; missing counts."""
    return [v for v in walk(document, parse(pointer)) if tenant is None or v != tenant]


def foreign_in_error(document: Any, pointer: str, tenant: str | None) -> bool:
    """Whether an error body holds a value at ``pointer``, or a member named like its
    last token anywhere, that is not ``tenant``."""
    return bool(foreign_error_values(document, pointer, tenant))


def foreign_error_values(document: Any, pointer: str, tenant: str | None) -> list[Any]:
    """The values of an error body at ``pointer``, and of every member named like its
    last token anywhere, that are not ``tenant`` (places it lacks do not count)."""
    tokens = parse(pointer)
    found = [v for v in walk(document, tokens) if v is not MISSING]
    if tokens and tokens[-1] != WILDCARD:
        found.extend(_members_named(document, tokens[-1]))
    return [value for value in found if tenant is None or value != tenant]


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
    """``document`` with foreign items removed from the container at the first ``*``."""
    drop_foreign(document, pointer, tenant)
    return document


def drop_foreign(document: Any, pointer: str, tenant: str | None) -> int:
    """Remove, in place, every item of the array (or member of the object) the first
    ``*`` of ``pointer`` walks whose values under the rest are not all ``tenant``.

    Returns how many were removed. ``ValueError`` when the pointer has no ``*`` or the
    place before it is neither an array nor an object (the answer's shape changed).
    """
    tokens = parse(pointer)
    star = tokens.index(WILDCARD)  # ValueError when the pointer walks nothing
    container = document
    for token in tokens[:star]:
        container = child(container, token)
    rest = tokens[star + 1 :]

    def foreign(item: Any) -> bool:
        return any(tenant is None or v != tenant for v in walk(item, rest))

    if isinstance(container, list):
        kept = [item for item in container if not foreign(item)]
        removed = len(container) - len(kept)
        container[:] = kept
        return removed
    if isinstance(container, dict):
        doomed = [key for key, item in container.items() if foreign(item)]
        for key in doomed:
            del container[key]
        return len(doomed)
    raise ValueError("the guarded field is neither a list nor an object")


def strip_fields(
    document: Any, allow: Collection[str], at: str = "", *, strict: bool = True
) -> list[str]:
    """Remove, in place, every member not in ``allow`` from each object ``at`` names.

    Returns the names removed (one per removal, in document order). With ``strict``
    (a 2xx answer) a place ``at`` names that is missing or not an object raises
    ``ValueError``: the answer no longer has the shape the rules describe. Without it
    (an error answer) such places are skipped.
    """
    removed: list[str] = []
    for place in walk(document, parse(at)):
        if not isinstance(place, dict):
            if strict:
                raise ValueError(f"the answer has no object at {at or 'its top'!r}")
            continue
        doomed = [key for key in place if key not in allow]
        for key in doomed:
            del place[key]
        removed += doomed
    return removed


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; ``ValueError`` for anything but one object or array.

    Duplicate member names are refused: parsers disagree on which one wins, so the
    guard could check one value while the client reads another. So is nesting deeper
    than the parser's recursion limit, text that is not UTF-8 (RFC 8259; ``json.loads``
    would otherwise guess UTF-16 or UTF-32 where a client reads the declared charset)
    and ``NaN`` or ``Infinity``, which are not JSON.
    """
    try:
        document = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_not_json,
        )
    except RecursionError:
        raise ValueError("the answer is nested too deeply") from None
    if not isinstance(document, dict | list):
        raise ValueError("the answer is not a JSON object or array")
    return document


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member names")
    return members


@dataclass(frozen=True, slots=True)
class Guarded:
    """The guard's verdict on one answer and what it did, for the audit outcome."""

    answer: UpstreamReply | Rejection
    report: GuardReport | None = None


class ResponseGuard:
    """Checks every answer of a guarded route against the request's tenant."""

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._max = max_bytes

    async def check(
        self, reply: UpstreamReply, *, match: RouteMatch, decision: Decision
    ) -> UpstreamReply | Rejection:
        """The answer to relay, or why it is refused (``inspect`` without the report)."""
        return (await self.inspect(reply, match=match, decision=decision)).answer

    async def inspect(
        self, reply: UpstreamReply, *, match: RouteMatch, decision: Decision
    ) -> Guarded:
        """Read, check and (filter, strip) the answer of a guarded route."""
        guard = match.route.guard
        response = reply.response
        if guard is None or response is None:
            return Guarded(reply)
        if reply.status in BODILESS or response.method == "HEAD":
            return Guarded(reply)  # no body by definition: nothing to leak, nothing forwarded
        try:
            body = await _read_to_end(response, self._max)
        finally:
            response.release()
        if body is None:
            why = f"the answer is larger than {self._max} bytes, too large to check"
            return _refused(guard, why)
        if not body and not 200 <= reply.status < 300:
            # An empty redirect or error carries no data; an empty 2xx on a guarded
            # route is a changed shape and refused below.
            return Guarded(
                UpstreamReply(reply.status, reply.reason, reply.headers, None, b"", reply.upstream)
            )
        try:
            document = parse_json(body)
        except ValueError:  # includes UnicodeDecodeError
            return _refused(guard, "the answer is not one JSON object or array")
        inspected = _inspect(document, guard, decision.tenant, ok=200 <= reply.status < 300)
        if inspected.refusal is not None:
            return Guarded(inspected.refusal, inspected.report)
        if not inspected.changed:
            sent, headers = body, reply.headers
        else:
            try:  # a number too large for a float reads as inf, which JSON cannot say
                sent = json.dumps(document, allow_nan=False).encode()
            except ValueError:
                why = "the changed answer could not be written as JSON"
                return Guarded(_blocked(why), replace(inspected.report, refused=why))
            headers = _fresh_headers(reply.headers)
        return Guarded(
            UpstreamReply(reply.status, reply.reason, headers, None, sent, reply.upstream),
            inspected.report,
        )


@dataclass(frozen=True, slots=True)
class _Inspected:
    """The refusal, if any, whether the document was changed, and the audit report."""

    refusal: Rejection | None
    changed: bool
    report: GuardReport


def _inspect(document: Any, guard: GuardSpec, tenant: str | None, *, ok: bool) -> _Inspected:
    """Check ``document`` (changing it in place when filtering or stripping)."""
    pointer = guard.tenant_field
    foreign = removed = 0
    if pointer is not None:
        if not ok:
            foreign = len(foreign_error_values(document, pointer, tenant))
        elif guard.mode is GuardMode.BLOCK:
            foreign = len(foreign_values(document, pointer, tenant))
        else:
            try:
                removed = foreign = drop_foreign(document, pointer, tenant)
            except ValueError:
                report = GuardReport(pointer, refused="the answer could not be filtered")
                return _Inspected(_blocked(report.refused), False, report)
        if foreign and not removed:
            report = GuardReport(pointer, foreign, refused="the answer held another tenant's data")
            return _Inspected(_blocked(report.refused), False, report)
    stripped: list[str] = []
    at = None
    if guard.fields is not None:
        at = guard.fields.at
        try:
            stripped = strip_fields(document, guard.fields.allow, at, strict=ok)
        except ValueError:
            where = repr(at) if at else "its top level"
            why = f"the answer has no object at {where} to keep fields of"
            report = GuardReport(pointer, foreign, removed, stripped_at=at, refused=why)
            return _Inspected(_blocked(why), False, report)
    report = GuardReport(pointer, foreign, removed, _audited_names(stripped), at)
    return _Inspected(None, bool(removed or stripped), report)


def _blocked(why: str) -> Rejection:
    return Rejection(Reason.GUARD_BLOCKED, why)


def _refused(guard: GuardSpec, why: str) -> Guarded:
    stripped_at = guard.fields.at if guard.fields is not None else None
    report = GuardReport(guard.tenant_field, stripped_at=stripped_at, refused=why)
    return Guarded(_blocked(why), report)


def _audited_names(names: list[str]) -> tuple[str, ...]:
    """Distinct, sorted and bounded: the app chooses these names, the audit row is ours."""
    distinct = sorted({name[:MAX_NAME_LENGTH] for name in names})
    return tuple(distinct[:MAX_NAMES_AUDITED])


def _fresh_headers(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """``headers`` without those describing bytes the guard replaced."""
    fresh = headers.copy()
    for name in STALE_WHEN_CHANGED:
        fresh.popall(name, None)
    return fresh


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
