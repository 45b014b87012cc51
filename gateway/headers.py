"""Header hygiene (I4): what may cross the gateway in each direction.

Names are compared case-insensitively and with ``_`` read as ``-``, because some
servers (CGI, PHP, WSGI) fold the two together and would otherwise accept a spoofed
``X_Gatehold_User`` as ``X-Gatehold-User``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie

from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

# Identity and routing headers only the gateway may set.
SPOOFABLE = frozenset(
    {
        "host",
        "content-length",
        "forwarded",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-real-ip",
        "x-client-ip",
        "x-user",
        "remote-user",
        "x-request-id",
    }
)
SPOOFABLE_PREFIXES = (
    "x-gatehold-",
    "x-auth-",
    "x-forwarded-",
    "x-remote-",
    "x-original-",
    "x-authenticated-",
)
GATEWAY_COOKIE_PREFIX = "__Host-gatehold"


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _connection_named(values: Iterable[str]) -> set[str]:
    return {_normal(token.strip()) for value in values for token in value.split(",") if token}


def clean_request_headers(
    headers: Mapping[str, str],
    *,
    drop_authorization: bool = False,
    gateway_cookie_prefix: str = GATEWAY_COOKIE_PREFIX,
) -> CIMultiDict[str]:
    """The client's headers that may be forwarded upstream."""
    items: list[tuple[str, str]] = list(headers.items())
    named = _connection_named(v for k, v in items if _normal(k) == "connection")
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        key = _normal(name)
        if key in HOP_BY_HOP or key in SPOOFABLE or key in named:
            continue
        if key.startswith(SPOOFABLE_PREFIXES):
            continue
        if key == "authorization" and drop_authorization:
            continue
        if key == "cookie":
            value = strip_gateway_cookies(value, gateway_cookie_prefix)
            if not value:
                continue
        kept.add(name, value)
    return kept


def strip_gateway_cookies(header: str, prefix: str = GATEWAY_COOKIE_PREFIX) -> str:
    """A ``Cookie`` header without the gateway's own cookies, others untouched."""
    if prefix not in header:
        return header
    parts = [p.strip() for p in header.split(";")]
    return "; ".join(p for p in parts if p and not p.split("=", 1)[0].strip().startswith(prefix))


def clean_response_headers(
    headers: Mapping[str, str], *, gateway_cookie_prefix: str = GATEWAY_COOKIE_PREFIX
) -> CIMultiDict[str]:
    """The upstream's headers that may reach the client."""
    items: list[tuple[str, str]] = list(headers.items())
    named = _connection_named(v for k, v in items if _normal(k) == "connection")
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        key = _normal(name)
        if key in HOP_BY_HOP or key in named or key == "content-length":
            continue
        if key == "set-cookie" and _sets_gateway_cookie(value, gateway_cookie_prefix):
            continue
        kept.add(name, value)
    return kept


def _sets_gateway_cookie(value: str, prefix: str) -> bool:
    try:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(value)
    except CookieError:
        return value.strip().startswith(prefix)
    return any(name.startswith(prefix) for name in cookie) or value.strip().startswith(prefix)
