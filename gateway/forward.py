"""Forwarding: pooled upstream connections, streaming both ways, WebSockets.

The canonical target goes out byte for byte (``yarl.URL(..., encoded=True)``), with the
client's headers cleaned (I4) and the gateway's identity headers and signed assertion
added. Bodies are streamed in 64 KiB chunks in both directions, never buffered whole.

Slow or greedy clients cannot starve the others (``limits`` settings): a request body
is read under a pause limit and a deadline (``body_stream``), its first piece before an
upstream connection is taken; waiting for a free upstream connection is bounded; and
streamed uploads may hold at most half of an upstream's pool, so plain requests always
find a connection. WebSockets are checked (handshake, ``Origin``) before the upstream is
dialled, registered in ``sockets.OpenSockets`` and closed when what opened them ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.assertion import AssertionSigner
from gateway.body_stream import RequestBody
from gateway.downloads import file_answer_headers
from gateway.errors import BodyStalled, BodyTooLarge, UpstreamFailed
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
    Reason,
    Rejection,
    RouteMatch,
    UpstreamDef,
    UpstreamReply,
)
from gateway.public_address import PublicAddress
from gateway.sockets import OpenSocket, OpenSockets
from gateway.store.api_keys import key_hash
from gateway.tenant_binding import bind_headers

log = logging.getLogger("gatehold.forward")
CHUNK = 64 * 1024
_BEARER_METHODS = frozenset({AuthMethod.BEARER_JWT, AuthMethod.API_KEY})
_DECODED_BY_SERVER = frozenset({"gzip", "deflate", "br", "zstd"})
"""``Content-Encoding`` values aiohttp's server inflates before the body is read."""

__all__ = ["Forwarder", "Refused"]


class Refused(Exception):
    """The forwarder refused the request before anything reached the upstream."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason.value)
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class ForwardLimits:
    """The ``limits`` settings the forwarder enforces (see ``config.settings``)."""

    upstream_pool: int = 100
    pool_acquire_timeout: float = 5.0
    body_idle_timeout: float = 10.0
    request_total_timeout: float = 120.0
    body_buffer: int = 64 * 1024
    websocket_max_lifetime: float = 3600.0
    websocket_origins: tuple[str, ...] = ()


class Forwarder:
    """Sends allowed requests to their upstream and relays the answers."""

    def __init__(
        self,
        upstreams: Mapping[str, UpstreamDef],
        *,
        public_url: str,
        signer: AssertionSigner,
        connect_timeout: float = 5.0,
        limits: ForwardLimits | None = None,
        sockets: OpenSockets | None = None,
        clock: Callable[[], float] = time.time,
        header_strip: HeaderStrip = DEFAULT_STRIP,
    ) -> None:
        self._upstreams = dict(upstreams)
        self._strip = header_strip
        self._public_url = public_url.rstrip("/")
        self._public = PublicAddress.of(public_url)
        self._forwarded = self._public.forwarded_headers()
        split = urlsplit(public_url)
        self.limits = limits or ForwardLimits()
        self._origins = frozenset(
            {f"{split.scheme}://{split.netloc}".lower(), *self.limits.websocket_origins}
        )
        self.signer = signer
        self._connect_timeout = connect_timeout
        self.sockets = sockets
        self._clock = clock
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._ws_sessions: dict[str, aiohttp.ClientSession] = {}
        # Streamed uploads may hold at most half of each pool: the rest stays for others.
        self._upload_slots = {
            name: asyncio.Semaphore(max(1, self.limits.upstream_pool // 2))
            for name in self._upstreams
        }
        # Per-upstream values every request needs, computed once rather than per request.
        self._hosts = {u.name: self._host_header(u) for u in self._upstreams.values()}
        self._timeouts = {u.name: self._timeout(u) for u in self._upstreams.values()}

    def _host_header(self, upstream: UpstreamDef) -> str:
        """``Host`` for ``upstream``: its own address, or with ``preserve_host`` the
        gateway's public host (never the client's ``Host``)."""
        return self._public.host if upstream.preserve_host else urlsplit(upstream.url).netloc

    def _timeout(self, upstream: UpstreamDef) -> aiohttp.ClientTimeout:
        # ``connect`` covers waiting for a pooled connection, or dialling a new one.
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.limits.pool_acquire_timeout,
            sock_connect=self._connect_timeout,
            sock_read=upstream.timeout_seconds,
        )

    async def start(self) -> None:
        for name in self._upstreams:
            self._sessions[name] = _client(
                aiohttp.TCPConnector(limit=self.limits.upstream_pool, keepalive_timeout=30)
            )
            # WebSockets hold their connection for as long as they are open: they get a
            # connector of their own, so open sockets never take the pool requests use.
            # They are bounded by the per-client connection cap and their lifetime.
            self._ws_sessions[name] = _client(aiohttp.TCPConnector(limit=0))

    async def close(self) -> None:
        if self.sockets is not None:
            await self.sockets.close_all()
        await self.close_pools()

    async def close_pools(self) -> None:
        """Close the upstream pools only: open WebSockets are shared across rule reloads."""
        for session in [*self._sessions.values(), *self._ws_sessions.values()]:
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
        headers["Host"] = self._hosts.get(upstream.name) or self._host_header(upstream)
        headers["X-Forwarded-For"] = admitted.client_ip
        for name, value in self._forwarded:
            headers[name] = value
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
        """Open the upstream request.

        Raises ``UpstreamFailed``, ``BodyTooLarge`` or ``Refused`` (body too slow, or an
        encoding the gateway cannot inspect); nothing reaches the upstream before the
        body's first ``limits.body_buffer`` bytes have arrived.
        """
        upstream = self._upstreams[match.route.upstream]
        limit = match.route.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge
        deadline = time.monotonic() + self.limits.request_total_timeout
        headers = self._headers(request, admitted, principal, decision, upstream)
        bind_headers(headers, match.route, decision.tenant)
        if match.route.guard is not None:
            # The guard reads the answer: ask for it uncompressed (the gateway does not
            # decompress answers, and a compressed one could only be refused).
            headers.popall("Accept-Encoding", None)
        if body is not None or request.body_exists:
            _describe_body(request, headers)
        data: bytes | IO[bytes] | AsyncIterator[bytes] | None = body
        reader: RequestBody | None = None
        if body is None and request.body_exists:
            reader = RequestBody(
                request, limit=limit, idle=self.limits.body_idle_timeout, deadline=deadline
            )
            try:
                whole = await reader.prefetch(self.limits.body_buffer)
            except BodyStalled:
                raise _stalled() from None
            data = whole if whole is not None else reader.stream()
        url = URL(upstream.url + admitted.target.raw, encoded=True)
        timeout = self._timeouts.get(upstream.name) or self._timeout(upstream)
        streamed = not isinstance(data, bytes | None)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                async with _slot(self._upload_slots[upstream.name], streamed, self.limits):
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
            _raise_body_failure(reader)
            if reader is not None and not reader.complete and _past(deadline):
                raise _stalled() from None  # the deadline passed with the body unfinished
            raise UpstreamFailed(upstream.name, timeout=True, detail=repr(error)) from None
        except aiohttp.ClientResponseError as error:  # not HTTP: status line, header, size
            _raise_body_failure(reader)
            raise UpstreamFailed(
                upstream.name, timeout=False, invalid=True, detail=repr(error)
            ) from None
        except aiohttp.ClientError as error:
            _raise_body_failure(reader)
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
            headers = file_answer_headers(
                headers,
                disposition=match.route.file_disposition,
                fallback_name=match.params.get("rest") or response.url.path,
            )
        return headers

    def _public_location(self, location: str, upstream: UpstreamDef) -> str:
        """A redirect to the upstream's own address becomes the same path on the gateway.

        So does, for a ``preserve_host`` upstream, one to the public host in the other
        scheme: such an app builds it from ``Host`` and the scheme it was spoken to in.
        """
        target = urlsplit(location)
        own = {urlsplit(upstream.url).netloc.lower()}
        if upstream.preserve_host:
            own.add(self._public.host.lower())
        if target.scheme in ("http", "https") and target.netloc.lower() in own:
            rest = target.path + (f"?{target.query}" if target.query else "")
            return self._public_url + (rest or "/")
        return location

    async def relay(
        self, request: web.Request, reply: UpstreamReply, *, started: float
    ) -> tuple[web.StreamResponse, Outcome]:
        """Stream the reply to the client; returns the response and what was sent.

        When the upstream breaks off the body, the client's connection is closed (so a
        cut answer never passes for a whole one) and the outcome says ``cut``.
        """
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
                    sent = await _copy_body(response, reply)
            await response.write_eof()
        except _Cut as cut:
            if request.transport is not None:
                request.transport.close()
            duration = (time.monotonic() - started) * 1000
            return response, Outcome(reply.status, cut.sent, duration, cut=True)
        except (_ClientGone, ConnectionResetError) as gone:
            # The client went away (aiohttp: "Cannot write to closing transport"); only
            # writes to the client raise it here, the upstream's failures are ``_Cut``.
            got = gone.sent if isinstance(gone, _ClientGone) else sent
            duration = (time.monotonic() - started) * 1000
            return response, Outcome(reply.status, got, duration, client_gone=True)
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
        """Proxy an allowed WebSocket: check, upstream, then the client, then pump both ways.

        The client's handshake and ``Origin`` are checked before the upstream is dialled
        (raises ``Refused``); the open socket is registered so a revocation, the
        credential's expiry or ``limits.websocket_max_lifetime`` closes it (1008).
        """
        client_ws = web.WebSocketResponse()
        if not client_ws.can_prepare(request).ok:
            raise Refused(Rejection(Reason.HEADER_INVALID, "not a valid WebSocket handshake"))
        refusal = self._check_origin(request, principal)
        if refusal is not None:
            raise Refused(refusal)
        upstream = self._upstreams[match.route.upstream]
        headers = self._headers(request, admitted, principal, decision, upstream)
        bind_headers(headers, match.route, decision.tenant)
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"):
            headers.popall(name, None)
        url = URL(upstream.url.replace("http", "ws", 1) + admitted.target.raw, encoded=True)
        try:
            upstream_ws = await self._ws_sessions[upstream.name].ws_connect(
                url,
                headers=headers,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            )
        except aiohttp.ClientError as error:
            raise UpstreamFailed(upstream.name, timeout=False, detail=repr(error)) from None
        await client_ws.prepare(request)
        entry = self._register(client_ws, request, admitted, principal, match)
        try:
            moved = await _pump(client_ws, upstream_ws)
        finally:
            if entry is not None and self.sockets is not None:
                self.sockets.remove(entry)
        return client_ws, Outcome(101, moved, (time.monotonic() - started) * 1000)

    def _check_origin(
        self, request: web.BaseRequest, principal: Principal | None
    ) -> Rejection | None:
        """Cross-site WebSocket hijacking rides on cookies: a browser page of another
        origin must not open a socket with the visitor's session.

        ``Origin`` must be the gateway's public origin or an allow-listed one. Without
        ``Origin`` (not a browser) only bearer and API-key callers may connect, whose
        credential a foreign page cannot make the browser send.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            if principal is None or principal.auth_method in _BEARER_METHODS:
                return None
            return Rejection(
                Reason.ORIGIN_FORBIDDEN, "a WebSocket with a session cookie needs an Origin"
            )
        if origin.strip().lower() in self._origins:
            return None
        return Rejection(Reason.ORIGIN_FORBIDDEN, "this origin may not open WebSockets here")

    def _register(
        self,
        ws: web.WebSocketResponse,
        request: web.BaseRequest,
        admitted: Admitted,
        principal: Principal | None,
        match: RouteMatch,
    ) -> OpenSocket | None:
        if self.sockets is None:
            return None
        credential: str | None = None
        if principal is not None and principal.session_hash is not None:
            credential = principal.session_hash
        elif principal is not None and principal.auth_method is AuthMethod.API_KEY:
            credential = key_hash(
                request.headers.get("Authorization", "").partition(" ")[2].strip()
            )
        return self.sockets.add(
            ws,
            credential_hash=credential,
            actor=principal.email if principal is not None else "anonymous",
            request_id=admitted.request_id,
            route=match.route.name,
            max_lifetime=self.limits.websocket_max_lifetime,
            expires_at=principal.expires_at if principal is not None else None,
        )


class _Cut(Exception):
    """The upstream broke off a body being relayed, after ``sent`` bytes."""

    def __init__(self, sent: int) -> None:
        super().__init__(sent)
        self.sent = sent


class _ClientGone(Exception):
    """The client closed its connection while its answer was being sent, after ``sent``
    bytes of the body: nobody's fault to log, and not the upstream's."""

    def __init__(self, sent: int) -> None:
        super().__init__(sent)
        self.sent = sent


async def _copy_body(response: web.StreamResponse, reply: UpstreamReply) -> int:
    """Copy the upstream's body to the client; the bytes copied, ``_Cut`` when the
    upstream breaks off, ``_ClientGone`` when the client does."""
    assert reply.response is not None  # noqa: S101 (checked by the caller)
    sent = 0
    chunks = reply.response.content.iter_chunked(CHUNK).__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return sent
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as error:
            log.warning(
                "upstream %s broke off its answer at byte %d: %r", reply.upstream, sent, error
            )
            raise _Cut(sent) from None
        try:
            await response.write(chunk)
        except ConnectionResetError:
            raise _ClientGone(sent) from None
        sent += len(chunk)


def _client(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )


def _describe_body(request: web.BaseRequest, headers: CIMultiDict[str]) -> None:
    """Make the forwarded headers describe the body that is forwarded.

    aiohttp's server inflates bodies sent with one of the encodings it knows; the
    inflated bytes are what the gateway inspected and counted, and what goes upstream,
    so they must not still be labelled compressed. Any other encoding is refused: the
    gateway could neither look inside nor limit the size the upstream would inflate to.
    """
    encoding = request.headers.get("Content-Encoding")
    if encoding is None:
        return
    token = encoding.strip().lower() if encoding.isascii() else encoding
    if token in _DECODED_BY_SERVER or token in ("", "identity"):
        headers.popall("Content-Encoding", None)
        return
    raise Refused(Rejection(Reason.BODY_INVALID, "this Content-Encoding is not accepted"))


def _past(deadline: float) -> bool:
    return time.monotonic() >= deadline - 0.01


def _stalled() -> Refused:
    return Refused(Rejection(Reason.BODY_TIMEOUT, "the request body stopped arriving"))


def _raise_body_failure(reader: RequestBody | None) -> None:
    """The client's body, not the upstream, stopped the request: say so."""
    if reader is None or reader.failure is None:
        return
    if isinstance(reader.failure, BodyTooLarge):
        raise BodyTooLarge from None
    raise _stalled() from None


@contextlib.asynccontextmanager
async def _slot(
    slots: asyncio.Semaphore, streamed: bool, limits: ForwardLimits
) -> AsyncIterator[None]:
    """For a streamed upload, one of the upstream's upload slots (bounded wait)."""
    if not streamed:
        yield
        return
    try:
        async with asyncio.timeout(limits.pool_acquire_timeout):
            await slots.acquire()
    except TimeoutError:
        raise aiohttp.ServerTimeoutError("no free upload slot for this upstream") from None
    try:
        yield
    finally:
        slots.release()


def _upstream_method(method: str, match: RouteMatch) -> str:
    """A guarded route's HEAD is sent as GET: the guard must read the body to check it,
    and the client gets the checked answer's headers (``relay`` sends no body)."""
    return "GET" if method == "HEAD" and match.route.guard is not None else method


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
