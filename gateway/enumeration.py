"""Enumeration defence: many denials on distinct object ids look like ID guessing.

A principal who collects ``slow_after`` denials on distinct ids within ``window`` is
slowed down (each further denial waits a little longer), and at ``block_after`` is
blocked for ``block_for``. Only denials that an id guesser produces count: a foreign
or a missing object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from gateway.model import Decision, Principal, Reason

COUNTED = frozenset({Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND})
MAX_DELAY = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after observing one decision."""

    delay: float = 0.0
    """Seconds to wait before answering (slow-down)."""
    newly_blocked: bool = False
    """This denial crossed the block threshold: audit and alert once."""
    distinct_ids: int = 0


class EnumerationGuard:
    """Per-principal sliding window of denied object ids."""

    def __init__(
        self,
        *,
        window: float,
        slow_after: int,
        block_after: int,
        block_for: float,
        clock: Callable[[], float] = time.monotonic,
        max_principals: int = 100_000,
    ) -> None:
        self._window = window
        self._slow_after = slow_after
        self._block_after = block_after
        self._clock = clock
        self._denied: TTLCache[str, dict[str, float]] = TTLCache(
            maxsize=max_principals, ttl=window, timer=clock
        )
        self._blocked: TTLCache[str, bool] = TTLCache(
            maxsize=max_principals, ttl=block_for, timer=clock
        )

    def blocked(self, principal: object) -> bool:
        """Whether this principal is blocked right now."""
        return isinstance(principal, Principal) and principal.user_id in self._blocked

    def observe(self, principal: object, decision: Decision) -> Verdict:
        """Count a denial on an object id; say whether to slow down or block."""
        if not isinstance(principal, Principal) or decision.reason not in COUNTED:
            return Verdict()
        ref = decision.resource
        if ref is None:
            return Verdict()
        now = self._clock()
        seen = self._denied.get(principal.user_id) or {}
        seen = {key: at for key, at in seen.items() if now - at <= self._window}
        seen[f"{ref.type}:{ref.id}"] = now
        self._denied[principal.user_id] = seen
        count = len(seen)
        if count >= self._block_after and principal.user_id not in self._blocked:
            self._blocked[principal.user_id] = True
            return Verdict(newly_blocked=True, distinct_ids=count)
        if count > self._slow_after:
            delay = min(MAX_DELAY, 0.1 * (count - self._slow_after))
            return Verdict(delay=delay, distinct_ids=count)
        return Verdict(distinct_ids=count)
