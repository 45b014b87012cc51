"""Requests in progress per caller and per client address: nobody holds the whole gateway.

A request counts from the moment its caller is known until its answer is done, twice:
against its caller (the principal's user id; without a principal, its client address)
under ``limit``, and against its client address under ``per_client`` — whoever
it is signed in as, so many stolen or minted credentials used from one address are
capped together. A request over either cap is answered 429 before anything is read or
forwarded. WebSockets do not count (they are bounded by their own lifetime).

The client address is the one ingress settled on (``Ingress.client_address``): behind
a trusted proxy, the address the proxy names, so each client behind a load balancer
has its own count. A request whose address is a trusted proxy itself (a proxy that did
not name a client) is not capped by address, as the connection cap exempts proxies:
one count would hold every client behind it. Clients behind a NAT share an address;
``per_client`` is set well above ``limit`` for that reason. Counts are per process.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.ingress import TrustedProxies
from gateway.model import Admitted, Anonymous, Principal, Reason, Rejection

_KEY = web.RequestKey("in_flight_counted", tuple[str, ...])


class InFlight:
    """Counts requests in progress per caller and per client address."""

    def __init__(
        self, limit: int, *, per_client: int | None = None, trusted_proxies: Sequence[str] = ()
    ) -> None:
        self._limit = limit
        self._per_client = per_client
        self._trusted = TrustedProxies(trusted_proxies)
        self._counts: dict[str, int] = {}

    def count(self, caller: str) -> int:
        return self._counts.get(caller, 0)

    def enter(
        self,
        request: web.Request,
        principal: Principal | Anonymous | Rejection,
        admitted: Admitted,
    ) -> Rejection | None:
        """Count ``request`` against its caller and address, or say why it may not start."""
        if isinstance(principal, Principal):
            caller = f"user:{principal.user_id}"
        else:
            caller = f"client:{admitted.client_ip}"
        if self._counts.get(caller, 0) >= self._limit:
            return Rejection(
                Reason.IN_FLIGHT_LIMIT,
                f"at most {self._limit} requests of one caller may be in progress at once",
            )
        counted: tuple[str, ...] = (caller,)
        address = self._address_key(admitted.client_ip)
        if address is not None and self._per_client is not None:
            if self._counts.get(address, 0) >= self._per_client:
                return Rejection(
                    Reason.IN_FLIGHT_LIMIT,
                    f"at most {self._per_client} requests from one client address may be "
                    "in progress at once",
                )
            counted = (caller, address)
        for key in counted:
            self._counts[key] = self._counts.get(key, 0) + 1
        request[_KEY] = counted
        return None

    def leave(self, request: web.Request) -> None:
        """The request's answer is done (called once per request, entered or not)."""
        counted = request.get(_KEY)
        if counted is None:
            return
        del request[_KEY]
        for key in counted:
            held = self._counts.get(key, 0) - 1
            if held > 0:
                self._counts[key] = held
            else:
                self._counts.pop(key, None)

    def _address_key(self, client_ip: str) -> str | None:
        """The count key of a client address; ``None`` for a trusted proxy's own."""
        if self._trusted and client_ip in self._trusted:  # no address parsing without proxies
            return None
        return f"address:{client_ip}"
