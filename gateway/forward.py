"""Forwarding: pooled upstream connections, streaming both ways, WebSockets.

The canonical target goes out byte for byte (``yarl.URL(..., encoded=True)``), with the
client's headers cleaned (I4) and the gateway's identity headers and signed assertion
added. Bodies are streamed in 64 KiB chunks in both directions, never buffered whole.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.assertion import AssertionSigner
from gateway.errors import UpstreamFailed
from gateway.headers import (
    DEFAULT_STRIP,
    HeaderStrip,
    clean_request_headers,
    clean_response_headers,
)
from gateway.model import (
    Admitted,
    AuthMethod,
    Decision,
    Outcome,
    Principal,
    RouteMatch,
    UpstreamDef,
)

CHUNK = 64 * 1024
_BEARER_METHODS = frozenset({AuthMethod.BEARER_JWT, AuthMethod.API_KEY})
_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


class BodyTooLarge(Exception):
    """The request body exceeds the route's ``max_body``."""


@dataclass
class UpstreamReply:
    """An upstream answer, still streaming (``response``) or buffered (``body``)."""

    status: int
    reason: str
    headers: CIMultiDict[str]
    response: aiohttp.ClientResponse | None
    body: bytes | None
    upstream: str


class Forwarder:
    """Sends allowed requests to their upstream and relays the answers."""

    def __init__(
        self,
        upstreams: Mapping[str, UpstreamDef],
        *,
        public_url: str,
        signer: AssertionSigner,
        connect_timeout: float = 5.0,
        pool_limit: int = 200,
        clock: Callable[[], float] = time.time,
        header_strip: HeaderStrip = DEFAULT_STRIP,
    ) -> None:
        self._upstreams = dict(upstreams)
        self._strip = header_strip
        self._public_url = public_url.rstrip("/")
        self._public_host = urlsplit(public_url).netloc
        self.signer = signer
        self._connect_timeout = connect_timeout
        self._pool_limit = pool_limit
        self._clock = clock
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        # Per-upstream values every request needs, computed once rather than per request.
        self._hosts = {u.name: urlsplit(u.url).netloc for u in self._upstreams.values()}
        self._timeouts = {
            u.name: aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=u.timeout_seconds
            )
            for u in self._upstreams.values()
        }

    async def start(self) -> None:
        for name in self._upstreams:
            self._sessions[name] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_limit, keepalive_timeout=30),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    def _headers(
        self,
        request: web.BaseRequest,
        admitted: Admitted,
        principal: Principal | None,
        decision: Decision,
        upstream: UpstreamDef,
    ) -> CIMultiDict[str]:
        bearer = principal is not None and principal.auth_method in _BEARER_METHODS
        headers = clean_request_headers(
            request.headers, drop_authorization=bearer, strip=self._strip
        )
        headers["Host"] = self._hosts.get(upstream.name) or urlsplit(upstream.url).netloc
        headers["X-Forwarded-For"] = admitted.client_ip
        headers["X-Forwarded-Proto"] = admitted.scheme
        headers["X-Forwarded-Host"] = self._public_host
        headers["X-Request-Id"] = admitted.request_id
        if principal is not None:
            headers["X-Gatehold-User"] = principal.user_id
            headers["X-Gatehold-Email"] = principal.email
            if decision.tenant is not None:
                headers["X-Gatehold-Tenant"] = decision.tenant
            headers["X-Gatehold-Roles"] = ",".join(decision.roles)
            headers["X-Gatehold-Assertion"] = self.signer.sign(
                principal=principal,
                tenant=decision.tenant,
                roles=decision.roles,
                audience=upstream.name,
                now=self._clock(),
            )
        return headers

    async def send(
        self,
        request: web.Request,
        *,
        admitted: Admitted,
        principal: Principal | None,
        match: RouteMatch,
        decision: Decision,
        body: bytes | IO[bytes] | None,
    ) -> UpstreamReply:
        """Open the upstream request; raises ``UpstreamFailed`` or ``BodyTooLarge``."""
        upstream = self._upstreams[match.route.upstream]
        limit = match.route.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge
        headers = self._headers(request, admitted, principal, decision, upstream)
        data: bytes | IO[bytes] | AsyncIterator[bytes] | None = body
        if body is None and request.body_exists:
            data = _limited(request, limit)
        url = URL(upstream.url + admitted.target.raw, encoded=True)
        timeout = self._timeouts.get(upstream.name) or aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=upstream.timeout_seconds
        )
        try:
            response = await self._sessions[upstream.name].request(
                _upstream_method(request.method, match),
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=timeout,
            )
        except BodyTooLarge:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise UpstreamFailed(upstream.name, timeout=True, detail=repr(error)) from None
        except aiohttp.ClientError as error:
            raise UpstreamFailed(upstream.name, timeout=False, detail=repr(error)) from None
        reply_headers = self._reply_headers(response, match, upstream)
        reply_headers["X-Request-Id"] = admitted.request_id
        return UpstreamReply(
            response.status,
            response.reason or "",
            reply_headers,
            response,
            None,
            upstream.name,
        )

    def _reply_headers(
        self, response: aiohttp.ClientResponse, match: RouteMatch, upstream: UpstreamDef
    ) -> CIMultiDict[str]:
        headers = clean_response_headers(response.headers)
        for name in ("Location", "Content-Location"):
            if name in headers:
                headers[name] = self._public_location(headers[name], upstream)
        if match.route.file_disposition is not None:
            original = _FILENAME.search(headers.get("Content-Disposition", ""))
            name = original.group(1) if original else match.params.get("rest", "") or ""
            headers["Content-Disposition"] = content_disposition(
                match.route.file_disposition, name or urlsplit(str(response.url)).path
            )
            headers["X-Content-Type-Options"] = "nosniff"
            headers["Cache-Control"] = "private, no-store"
        return headers

    def _public_location(self, location: str, upstream: UpstreamDef) -> str:
        """A redirect to the upstream's own address becomes the same path on the gateway."""
        target = urlsplit(location)
        own = urlsplit(upstream.url)
        if target.scheme in ("http", "https") and target.netloc.lower() == own.netloc.lower():
            rest = target.path + (f"?{target.query}" if target.query else "")
            return self._public_url + (rest or "/")
        return location

    async def relay(
        self, request: web.Request, reply: UpstreamReply, *, started: float
    ) -> tuple[web.StreamResponse, Outcome]:
        """Stream the reply to the client; returns the response and what was sent."""
        response = web.StreamResponse(status=reply.status, reason=reply.reason or None)
        response.headers.extend(reply.headers)
        sent = 0
        try:
            if reply.body is not None:
                response.content_length = len(reply.body)
            elif reply.response is not None and reply.response.content_length is not None:
                response.content_length = reply.response.content_length
            await response.prepare(request)
            if request.method != "HEAD" and reply.status not in (204, 304):
                if reply.body is not None:
                    await response.write(reply.body)
                    sent = len(reply.body)
                elif reply.response is not None:
                    async for chunk in reply.response.content.iter_chunked(CHUNK):
                        await response.write(chunk)
                        sent += len(chunk)
            await response.write_eof()
        finally:
            if reply.response is not None:
                reply.response.release()
        duration = (time.monotonic() - started) * 1000
        return response, Outcome(reply.status, sent, duration)

    async def websocket(
        self,
        request: web.Request,
        *,
        admitted: Admitted,
        principal: Principal | None,
        match: RouteMatch,
        decision: Decision,
        started: float,
    ) -> tuple[web.StreamResponse, Outcome]:
        """Proxy an allowed WebSocket: upstream first, then the client, then pump both ways."""
        upstream = self._upstreams[match.route.upstream]
        headers = self._headers(request, admitted, principal, decision, upstream)
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"):
            headers.popall(name, None)
        url = URL(upstream.url.replace("http", "ws", 1) + admitted.target.raw, encoded=True)
        try:
            upstream_ws = await self._sessions[upstream.name].ws_connect(
                url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=5)
            )
        except aiohttp.ClientError as error:
            raise UpstreamFailed(upstream.name, timeout=False, detail=repr(error)) from None
        client_ws = web.WebSocketResponse()
        await client_ws.prepare(request)
        moved = await _pump(client_ws, upstream_ws)
        return client_ws, Outcome(101, moved, (time.monotonic() - started) * 1000)


def _upstream_method(method: str, match: RouteMatch) -> str:
    """A guarded route's HEAD is sent as GET: the guard must read the body to check it,
    and the client gets the checked answer's headers (``relay`` sends no body)."""
    return "GET" if method == "HEAD" and match.route.guard is not None else method


async def _limited(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge
        yield chunk


async def _pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> int:
    moved = 0

    async def copy(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        nonlocal moved
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                moved += len(message.data)
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                moved += len(message.data)
                await sink.send_bytes(message.data)
            else:
                break
        await sink.close()

    tasks = [
        asyncio.ensure_future(copy(client, upstream)),
        asyncio.ensure_future(copy(upstream, client)),
    ]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await upstream.close()
    await client.close()
    return moved


def content_disposition(disposition: str, filename: str) -> str:
    """A safe ``Content-Disposition``: ASCII fallback plus RFC 5987 UTF-8 name."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C" and c not in '"%;')
    name = name.strip().lstrip(".") or "download"
    ascii_name = name.encode("ascii", "ignore").decode() or "download"
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
