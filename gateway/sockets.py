"""Open WebSockets, so that ending a credential also ends the sockets it opened.

A WebSocket is authorised once, at its upgrade; after that no request passes the
pipeline. Each socket is registered here under the hash of the credential that opened
it (the session id hash, or the API key hash). The revocation poll shared by sessions
and API keys (``auth.revocations``) reports every revoked hash, and the sockets opened
with it are closed with code 1008 (policy violation) and an audit event. A socket is
also closed when its credential expires (session absolute expiry, API key or bearer
token expiry) and after ``max_lifetime`` whatever the credential, so nothing outlives
the limits of what opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from gateway.audit import AuditWriter, event_entry

POLICY_VIOLATION = WSCloseCode.POLICY_VIOLATION  # 1008


@dataclass(eq=False)
class OpenSocket:
    """One client WebSocket the gateway relays."""

    ws: web.WebSocketResponse
    credential_hash: str | None
    actor: str
    request_id: str
    route: str
    timer: asyncio.TimerHandle | None = None
    closing: asyncio.Task[None] | None = field(default=None, repr=False)


class OpenSockets:
    """The gateway's open WebSockets, by credential hash."""

    def __init__(self, audit: AuditWriter, *, clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._clock = clock
        self._by_credential: dict[str, set[OpenSocket]] = {}
        self._all: set[OpenSocket] = set()

    def __len__(self) -> int:
        return len(self._all)

    def add(
        self,
        ws: web.WebSocketResponse,
        *,
        credential_hash: str | None,
        actor: str,
        request_id: str,
        route: str,
        max_lifetime: float,
        expires_at: float | None = None,
    ) -> OpenSocket:
        """Register a socket; it is closed at ``max_lifetime`` or ``expires_at`` (Unix time)."""
        entry = OpenSocket(ws, credential_hash, actor, request_id, route)
        delay, why = max_lifetime, "max-lifetime"
        if expires_at is not None and expires_at - self._clock() < delay:
            delay, why = max(0.0, expires_at - self._clock()), "credential-expired"
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(delay, self._close_soon, entry, why)
        self._all.add(entry)
        if credential_hash is not None:
            self._by_credential.setdefault(credential_hash, set()).add(entry)
        return entry

    def remove(self, entry: OpenSocket) -> None:
        """Forget a socket that has ended."""
        if entry.timer is not None:
            entry.timer.cancel()
        self._all.discard(entry)
        if entry.credential_hash is not None:
            group = self._by_credential.get(entry.credential_hash)
            if group is not None:
                group.discard(entry)
                if not group:
                    del self._by_credential[entry.credential_hash]

    def revoked(self, hashes: Iterable[str]) -> None:
        """Close every socket opened with one of these (revoked) credential hashes."""
        for credential_hash in hashes:
            for entry in list(self._by_credential.get(credential_hash, ())):
                self._close_soon(entry, "credential-revoked")

    async def close_all(self, why: str = "gateway-stopping") -> None:
        """Close every open socket (the gateway is stopping)."""
        for entry in list(self._all):
            self._close_soon(entry, why)
        closing = [e.closing for e in self._all if e.closing is not None]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)

    def _close_soon(self, entry: OpenSocket, why: str) -> None:
        if entry.closing is None and entry in self._all:
            entry.closing = asyncio.ensure_future(self._close(entry, why))

    async def _close(self, entry: OpenSocket, why: str) -> None:
        self._audit.record(
            event_entry(
                "websocket-closed",
                actor=entry.actor,
                request_id=entry.request_id,
                route=entry.route,
                reason=why,
                code=int(POLICY_VIOLATION),
            )
        )
        with contextlib.suppress(Exception):
            await entry.ws.close(code=POLICY_VIOLATION, message=why.encode())
