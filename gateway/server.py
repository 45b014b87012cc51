"""The HTTP server under the gateway: per-client connection caps and parse-error answers.

aiohttp's server answers requests its parser refuses (a NUL or raw non-ASCII byte in
the target, an unknown method, an oversized header…) with a plain-text 400 that repeats
the start of the offending input — for an oversized ``Cookie`` header, a session
cookie — and without an audit record. Here those are answered with the gateway's own
problem page, which never echoes input, and audited as rejected.

Connections are counted per peer address; past ``limits.connections_per_client`` a new
connection is answered 429 and closed before anything is read. Trusted proxies (which
carry many clients' connections) are exempt.

Production (``runtime``) and the test stack both serve through ``GatewayRunner``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from gateway.audit import event_entry
from gateway.context import GATEWAY, Gateway
from gateway.ingress import TrustedProxies, new_request_id
from gateway.model import Reason, Rejection
from gateway.refusals import reject_unread

log = logging.getLogger("gatehold.server")

HEAD_LIMITS: dict[str, int] = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 128}
"""aiohttp's request head limits, pinned so an upgrade cannot change them unseen: the
request line and each header field at most 8190 bytes, at most 128 headers. A head
past them is answered 400 ``request-malformed`` (audited) by ``handle_error``."""

AUDIT_EVERY = 10.0
"""Seconds between two audit events about one address's refused connections."""


class ConnectionGuard:
    """Open connections per client address, with the trusted proxies exempt."""

    def __init__(self, *, per_client: int, trusted_proxies: Sequence[str] = ()) -> None:
        self.per_client = per_client
        self._trusted = TrustedProxies(trusted_proxies)
        self._open: dict[str, int] = {}
        self._audited: dict[str, float] = {}

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; ``False`` if it is one too many."""
        if address in self._trusted:
            return True
        held = self._open.get(address, 0)
        if held >= self.per_client:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        """A counted connection from ``address`` has closed."""
        if address in self._trusted:
            return
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)

    def should_audit(self, address: str, now: float) -> bool:
        """Audit refused connections of one address at most every ``AUDIT_EVERY`` s."""
        if now - self._audited.get(address, 0.0) < AUDIT_EVERY:
            return False
        if len(self._audited) > 10_000:
            self._audited.clear()
        self._audited[address] = now
        return True


CONNECTIONS = web.AppKey("connections", ConnectionGuard)


class GatewayRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering parse errors the gateway's way."""

    gateway: Gateway | None = None

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A problem answer and an audit record; never the input, never a trace."""
        gateway = self.gateway
        if gateway is None:  # pragma: no cover - always set by GatewayServer
            return super().handle_error(request, status, exc, None)
        log.debug("refused an unreadable request: %s", type(exc).__name__ if exc else status)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is closed")
        reason = Reason.REQUEST_MALFORMED if status < 500 else Reason.INTERNAL_ERROR
        detail = _malformed_detail(exc) if reason is Reason.REQUEST_MALFORMED else _UNEXPECTED
        response = reject_unread(
            gateway,
            request,
            Rejection(reason, detail),
            actor="anonymous",
            client=_peer_address(self.transport),
            error=type(exc).__name__ if exc is not None else str(status),
        )
        response.force_close()
        return response


class GatewayServer(web.Server):
    """aiohttp's server with the connection cap and ``GatewayRequestHandler``."""

    def __init__(self, base: web.Server, *, gateway: Gateway, guard: ConnectionGuard) -> None:
        kwargs: dict[str, Any] = dict(base._kwargs)  # the handler settings aiohttp chose
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )
        self.gateway = gateway
        self.guard = guard
        self._counted: dict[RequestHandler, str] = {}

    def __call__(self) -> RequestHandler:
        handler = GatewayRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.gateway = self.gateway
        return handler

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        address = _peer_address(transport)
        if self.guard.admit(address):
            self._counted[handler] = address
            return
        self._refuse(address, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._counted.pop(handler, None)
        if address is not None:
            self.guard.release(address)
        super().connection_lost(handler, exc)

    def _refuse(self, address: str, transport: asyncio.Transport) -> None:
        """429 and close, before reading anything from the connection."""
        gateway = self.gateway
        request_id = new_request_id()
        if self.guard.should_audit(address, time.monotonic()):
            gateway.audit.record(
                event_entry(
                    "rejected",
                    actor="anonymous",
                    request_id=request_id,
                    reason=Reason.CONNECTION_LIMIT.value,
                    client=address,
                    limit=self.guard.per_client,
                )
            )
        gateway.metrics.decided("", "deny", Reason.CONNECTION_LIMIT.value, None)
        problem = gateway.renderer.problem(
            Reason.CONNECTION_LIMIT,
            detail=f"At most {self.guard.per_client} connections per client are open at once.",
            request_id=request_id,
            target="/",
        )
        body = json.dumps(
            {
                "type": f"/.gatehold/problems/{problem.reason}",
                "title": problem.title,
                "status": problem.status,
                "detail": problem.detail,
                "request_id": request_id,
            }
        ).encode()
        head = (
            "HTTP/1.1 429 Too Many Requests\r\n"
            "Content-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\n"
            "Retry-After: 10\r\n"
            "Connection: close\r\n\r\n"
        )
        transport.write(head.encode("ascii") + body)
        transport.close()


class GatewayRunner(web.AppRunner):
    """``AppRunner`` serving through ``GatewayServer``: what production and tests run."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        app = self.app
        return GatewayServer(base, gateway=app[GATEWAY], guard=app[CONNECTIONS])


_UNEXPECTED = "The gateway hit an unexpected error. Nothing was forwarded past it."


def _malformed_detail(exc: BaseException | None) -> str:
    """What was wrong with an unreadable request, without repeating any of it."""
    too_many = isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)
    if isinstance(exc, LineTooLong) or too_many:
        return (
            "The request head is larger than the gateway accepts: at most "
            f"{HEAD_LIMITS['max_headers']} headers, each line at most "
            f"{HEAD_LIMITS['max_field_size']} bytes."
        )
    return "The request is not valid HTTP the gateway accepts."


def _peer_address(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""
