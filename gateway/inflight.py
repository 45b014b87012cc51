"""Requests in progress per caller: one caller cannot hold the whole gateway.

A request counts from the moment its caller is known until its answer is done. A
caller over ``limit`` is answered 429 before anything is read or forwarded. Callers are
the principal's user id; requests without a principal count against their client
address. WebSockets do not count (they are bounded by their own lifetime).
"""

from __future__ import annotations

from aiohttp import web

from gateway.model import Admitted, Anonymous, Principal, Reason, Rejection

_KEY = web.RequestKey("in_flight_caller", str)


class InFlight:
    """Counts requests in progress per caller."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._counts: dict[str, int] = {}

    def count(self, caller: str) -> int:
        return self._counts.get(caller, 0)

    def enter(
        self,
        request: web.Request,
        principal: Principal | Anonymous | Rejection,
        admitted: Admitted,
    ) -> Rejection | None:
        """Count ``request`` against its caller, or say why it may not start."""
        if isinstance(principal, Principal):
            caller = f"user:{principal.user_id}"
        else:
            caller = f"client:{admitted.client_ip}"
        held = self._counts.get(caller, 0)
        if held >= self._limit:
            return Rejection(
                Reason.IN_FLIGHT_LIMIT,
                f"at most {self._limit} requests of one caller may be in progress at once",
            )
        self._counts[caller] = held + 1
        request[_KEY] = caller
        return None

    def leave(self, request: web.Request) -> None:
        """The request's answer is done (called once per request, entered or not)."""
        caller = request.get(_KEY)
        if caller is None:
            return
        del request[_KEY]
        held = self._counts.get(caller, 0) - 1
        if held > 0:
            self._counts[caller] = held
        else:
            self._counts.pop(caller, None)
