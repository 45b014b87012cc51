"""Response guard: a second line of defence when the app behind leaks other tenants' data.

Only routes with ``guard:`` are inspected. ``block`` refuses an answer carrying any
foreign tenant value; ``filter`` drops the foreign elements of the list the pointer's
``*`` walks. Anything the guard cannot read on a guarded route is refused (fail closed).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.forward import UpstreamReply
from gateway.model import Decision, GuardMode, Reason, Rejection, RouteMatch


def foreign_values(document: Any, pointer: str, tenant: str | None) -> list[Any]:
    """Values at ``pointer`` (``*`` walks arrays) that are not ``tenant``; missing counts."""
    return [v for v in _walk(document, pointer.split("/")[1:]) if v != tenant or tenant is None]


def _walk(node: Any, tokens: list[str]) -> list[Any]:
    if not tokens:
        return [node]
    step, rest = tokens[0], tokens[1:]
    if step == "*":
        if not isinstance(node, list):
            return [None]
        return [v for item in node for v in _walk(item, rest)]
    if isinstance(node, dict):
        return _walk(node.get(step), rest) if step in node else [None]
    return [None]


def filter_foreign(document: Any, pointer: str, tenant: str | None) -> Any:
    """``document`` with foreign elements removed from the array at the first ``*``."""
    tokens = pointer.split("/")[1:]
    star = tokens.index("*")
    container = document
    for step in tokens[:star]:
        container = container[step] if isinstance(container, dict) else None
    if not isinstance(container, list):
        raise ValueError("the guarded field is not a list")
    suffix = "/" + "/".join(tokens[star + 1 :]) if tokens[star + 1 :] else ""
    container[:] = [item for item in container if not foreign_values(item, suffix or "", tenant)]
    return document


class ResponseGuard:
    """Checks JSON answers of guarded routes against the request's tenant."""

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._max = max_bytes

    async def check(
        self, reply: UpstreamReply, *, match: RouteMatch, decision: Decision
    ) -> UpstreamReply | Rejection:
        guard = match.route.guard
        if guard is None or not 200 <= reply.status < 300 or reply.response is None:
            return reply
        try:
            body = await reply.response.content.read(self._max + 1)
        finally:
            reply.response.release()
        if len(body) > self._max:
            return Rejection(Reason.GUARD_BLOCKED, "the answer is too large to check")
        try:
            document = json.loads(body)
        except ValueError:
            return Rejection(Reason.GUARD_BLOCKED, "the answer could not be checked")
        if guard.mode is GuardMode.BLOCK:
            if foreign_values(document, guard.tenant_field, decision.tenant):
                return Rejection(Reason.GUARD_BLOCKED, "the answer held another tenant's data")
            checked = body
        else:
            try:
                filtered = filter_foreign(document, guard.tenant_field, decision.tenant)
            except (ValueError, TypeError, KeyError):
                return Rejection(Reason.GUARD_BLOCKED, "the answer could not be filtered")
            checked = json.dumps(filtered).encode()
        return UpstreamReply(
            reply.status, reply.reason, reply.headers, None, checked, reply.upstream
        )
