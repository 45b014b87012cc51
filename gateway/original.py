"""The original request a front proxy asks about, rebuilt from its headers.

Each front proxy names the request it is holding in headers of its own:

    nginx auth_request       X-Original-Method, X-Original-URI ($request_uri, raw)
    Caddy, Traefik           X-Forwarded-Method, -Uri, -Host, -Proto
    ingress-nginx auth-url   X-Original-Method, X-Original-URL (absolute), X-Original-URI

The front proxy passes the client's other headers along too, so a client can add a
second dialect's headers of its own (``X-Original-URI: /public`` through Caddy). The
original is therefore named exactly once: every target and method header present must
agree, one value each, or the request is refused (400) rather than judged on a guess.
The target is kept raw; ``ingress`` canonicalizes it exactly as it does on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.headers import HeaderStrip, fold
from gateway.model import Reason, Rejection

METHOD_HEADERS = ("X-Original-Method", "X-Forwarded-Method")
TARGET_HEADERS = ("X-Original-URI", "X-Forwarded-Uri", "X-Original-URL")
HOST_HEADER = "X-Forwarded-Host"
FRONT_PROXY_HEADERS = (*METHOD_HEADERS, *TARGET_HEADERS, HOST_HEADER)
"""The headers naming the original request; none of them is the original's own."""
_SUBREQUEST_HEADERS = ("Host", "Content-Length", "Transfer-Encoding")
"""The subrequest's own framing and host, never the original's."""
SET_BY_FRONT_PROXIES = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-original-forwarded-for",
        "x-real-ip",
        "x-scheme",
        "x-request-id",
        "x-auth-request-redirect",
        "x-sent-from",
    }
)
"""Headers front proxies set on the subrequest themselves (exact spelling): they cannot
be told from a client's, so the front proxy must set them over the client's (the
exported configs do)."""
_METHOD = re.compile(r"[A-Z][A-Z-]{0,19}")
_ABSOLUTE = re.compile(r"(https?)://([^/?#\s]+)(/[^#]*)?", re.IGNORECASE)


class NoBody:
    """The original's body: the front proxy keeps it, so there is nothing to read."""

    async def readany(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Original:
    """The front proxy's request as the decision sees it (``model.IncomingRequest``)."""

    method: str
    raw_path: str
    """The origin-form target exactly as the client sent it."""
    headers: CIMultiDictProxy[str]
    """The client's headers as passed along, ``Host`` the original's."""
    cookies: Mapping[str, str]
    remote: str | None
    """The front proxy's address: ingress reads the client's from X-Forwarded-For."""
    dialect: str
    """``nginx``, ``forwarded`` (Caddy, Traefik) or ``ingress-nginx``: for the audit row."""
    scheme: str = "http"
    version: tuple[int, int] = (1, 1)
    body_exists: bool = False
    """Never read: routes that need the body are refused before ids are read."""
    content: NoBody = field(default_factory=NoBody)

    @property
    def content_length(self) -> int | None:
        return None


def _one(request: web.BaseRequest, name: str) -> str | None | Rejection:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        return Rejection(Reason.HEADER_INVALID, f"{name} was sent more than once")
    return values[0] if values else None


def _agreed(request: web.BaseRequest, names: tuple[str, ...], what: str) -> str | Rejection:
    """The one value every present header of ``names`` gives, or why there is none."""
    found: set[str] = set()
    for name in names:
        value = _one(request, name)
        if isinstance(value, Rejection):
            return value
        if value is not None:
            found.add(_origin_form(value) if name == "X-Original-URL" else value)
    if not found:
        return Rejection(Reason.HEADER_INVALID, f"the front proxy named no original {what}")
    if len(found) > 1:
        return Rejection(
            Reason.HEADER_INVALID, f"the original {what} is named differently by two headers"
        )
    return found.pop()


def _origin_form(url: str) -> str:
    """The path and query of an absolute URL, as sent; junk stays junk (ingress refuses)."""
    parts = _ABSOLUTE.fullmatch(url)
    if parts is None:
        return url if url.startswith("/") else f"!{url}"
    return parts.group(3) or "/"


def _dialect(request: web.BaseRequest) -> str:
    headers = request.headers
    if "X-Original-URL" in headers:
        return "ingress-nginx"
    return "nginx" if "X-Original-URI" in headers else "forwarded"


def _host(request: web.BaseRequest) -> str | Rejection:
    """The original's Host: X-Forwarded-Host or X-Original-URL's, which must agree."""
    hosts: set[str] = set()
    forwarded = _one(request, HOST_HEADER)
    if isinstance(forwarded, Rejection):
        return forwarded
    if forwarded is not None:
        hosts.add(forwarded.lower())
    url = _one(request, "X-Original-URL")
    if isinstance(url, Rejection):
        return url
    if url is not None and (parts := _ABSOLUTE.fullmatch(url)) is not None:
        hosts.add(parts.group(2).lower())
    if len(hosts) > 1:
        return Rejection(Reason.HEADER_INVALID, "the original host is named differently")
    return hosts.pop() if hosts else request.headers.get("Host", "")


def spoofed(headers: CIMultiDictProxy[str], strip: HeaderStrip, copied: frozenset[str]) -> str:
    """The first client header the full proxy would remove (I4) and a front proxy would
    pass on to the app, or ``""``.

    The full proxy strips identity and routing headers in every spelling; behind a front
    proxy nobody can, so a request carrying one is refused. Exempt are the exact names
    the front proxy sets itself: the subrequest's framing and dialect headers, the
    forwarding family (``SET_BY_FRONT_PROXIES``) and the identity headers it copies from
    the answer over the client's (``copied``).
    """
    for name in headers:
        lower = name.lower()
        if lower in _DROPPED or lower in SET_BY_FRONT_PROXIES or lower in copied:
            continue
        if strip.strips(fold(name)):
            return name
    return ""


def original_request(request: web.BaseRequest) -> Original | Rejection:
    """The original request named by the front proxy's headers, or why it is unclear."""
    method = _agreed(request, METHOD_HEADERS, "method")
    if isinstance(method, Rejection):
        return method
    if not _METHOD.fullmatch(method):
        return Rejection(Reason.HEADER_INVALID, "the original method is not a method name")
    target = _agreed(request, TARGET_HEADERS, "target")
    if isinstance(target, Rejection):
        return target
    host = _host(request)
    if isinstance(host, Rejection):
        return host
    headers = CIMultiDict(
        (name, value) for name, value in request.headers.items() if name.lower() not in _DROPPED
    )
    if host:
        headers["Host"] = host
    url = request.headers.get("X-Original-URL", "")
    if "X-Forwarded-Proto" not in headers and (parts := _ABSOLUTE.fullmatch(url)):
        headers["X-Forwarded-Proto"] = parts.group(1).lower()
    return Original(
        method=method,
        raw_path=target,
        headers=CIMultiDictProxy(headers),
        cookies=request.cookies,
        remote=request.remote,
        dialect=_dialect(request),
        scheme=request.scheme,
    )


_DROPPED = frozenset(name.lower() for name in (*FRONT_PROXY_HEADERS, *_SUBREQUEST_HEADERS))
