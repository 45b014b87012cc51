"""Header hygiene (I4): what may cross the gateway in each direction.

Header names are compared in one folded form: lower case, every run of punctuation
read as one ``-``, and punctuation at either end ignored. CGI, WSGI, PHP and Apache
turn ``-``, ``_``, ``.`` and other token characters into the same ``_`` and ignore
case, so ``X.Gatehold.Tenant`` or ``true_client_ip`` would otherwise reach the app as
the header it trusts. aiohttp refuses whitespace in a field name, so punctuation is
the whole class.

Which client headers are removed (``HeaderStrip``):

* ``CORE``: the gateway's own headers and those I4 names. Always removed; no setting
  lets one through.
* ``COMMON``: identity, tenant and client-address headers that other proxies set and
  apps commonly trust (``True-Client-IP``, ``X-WEBAUTH-*``, ``X-Amzn-Oidc-*`` ...).
  Removed by default; ``headers.pass`` may let a named one through on purpose.
* ``headers.strip``: more names of this kind, ``*`` at the end for a prefix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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

# The gateway's own headers and the identity/routing headers of I4: never forwarded.
CORE_NAMES = frozenset(
    {
        "host",
        "content-length",
        "forwarded",
        "x-forwarded",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-request-id",
        "remote-user",
        "x-user",
        "x-real-ip",
        "x-client-ip",
    }
)
CORE_PREFIXES = (
    "x-gatehold-",
    "x-auth-",
    "x-forwarded-",
    "x-remote-",
    "x-original-",
    "x-authenticated-",
)

# What other proxies, CDNs and identity-aware front ends set and apps trust.
COMMON_NAMES = frozenset(
    {
        "true-client-ip",
        "x-cluster-client-ip",
        "cf-connecting-ip",
        "cf-connecting-ipv6",
        "fastly-client-ip",
        "x-originating-ip",
        "client-ip",
        "x-host",
        "x-http-host-override",
        "x-scheme",
        "x-url-scheme",
        "front-end-https",
        "x-custom-ip-authorization",
        "x-email",
        "x-groups",
        "x-client-cert",
        "x-client-verify",
        "x-client-dn",
    }
)
COMMON_PREFIXES = (
    "x-user",  # X-User-ID, X-UserId, X-Username, X-User-Email ...
    "x-tenant",  # X-Tenant, X-Tenant-ID, X-TenantId ...
    "remote-",  # Remote-User/-Email/-Groups/-Name (Authelia, Caddy, Traefik forward auth)
    "x-webauth-",  # Grafana auth proxy
    "x-proxyuser-",
    "x-envoy-",
    "x-amzn-oidc-",  # AWS ALB
    "x-ms-client-principal",  # Azure App Service
    "x-goog-authenticated-",  # Google IAP
    "x-goog-iap-",
    "cf-access-",  # Cloudflare Access
    "x-pomerium-",
    "x-vouch-",
    "x-authentik-",
    "tailscale-user-",
    "x-ssl-",  # client certificate details
    "ssl-client-",
    "x-arr-",
)

GATEWAY_COOKIE_PREFIX = "__Host-gatehold"
_PUNCTUATION = re.compile(r"[^a-z0-9]+")
_MAX_CACHED_NAMES = 4096
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'+.^_`|~-]+\*?")


@functools.lru_cache(maxsize=4096)
def fold(name: str) -> str:
    """The form header names are compared in: ``X.Gatehold_Tenant`` → ``x-gatehold-tenant``."""
    return _PUNCTUATION.sub("-", name.lower()).strip("-")


def always_stripped(name: str) -> bool:
    """Whether ``name`` is one of the headers no setting can let through."""
    key = fold(name)
    return key in CORE_NAMES or key.startswith(CORE_PREFIXES) or key in HOP_BY_HOP


def entry_problem(entry: str) -> str:
    """Why a ``headers.strip`` / ``headers.pass`` entry is unusable, or ``""``."""
    if not _TOKEN.fullmatch(entry) or not fold(entry.rstrip("*")):
        return (
            f"{entry!r} is not a header name: use letters, digits and '-', "
            "with an optional '*' at the end for a prefix"
        )
    return ""


@dataclass(frozen=True, slots=True)
class HeaderStrip:
    """The client headers removed before forwarding, in folded form."""

    names: frozenset[str]
    prefixes: tuple[str, ...]
    passed: frozenset[str] = frozenset()
    """Names exempt from a ``COMMON`` or configured prefix (never from ``CORE``)."""
    _keys: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Verdicts by name as received (``key_of``); the hot path is one lookup per header."""

    @classmethod
    def build(cls, *, strip: Sequence[str] = (), passed: Sequence[str] = ()) -> HeaderStrip:
        """The defaults plus ``strip`` entries, minus ``passed`` names.

        Raises ``ValueError`` for a malformed entry or a ``CORE`` name in ``passed``;
        settings validation reports both before this runs.
        """
        problems = [p for p in map(entry_problem, (*strip, *passed)) if p]
        problems += [f"{n!r} is always removed" for n in passed if always_stripped(n)]
        if problems:
            raise ValueError("; ".join(problems))
        exempt = frozenset(fold(n) for n in passed)
        extra = [fold(e.rstrip("*")) for e in strip if e.endswith("*")]
        names = CORE_NAMES | ((COMMON_NAMES | {fold(e) for e in strip if "*" not in e}) - exempt)
        prefixes = (*CORE_PREFIXES, *COMMON_PREFIXES, *extra)
        return cls(names, prefixes, exempt)

    def strips(self, key: str) -> bool:
        """Whether the folded header name ``key`` is removed."""
        if key in self.names:
            return True
        return key.startswith(self.prefixes) and key not in self.passed

    def key_of(self, name: str) -> str:
        """The folded form of ``name``, or ``""`` if the header is removed (hop-by-hop or
        listed). Cached by the name as received; the cache is bounded, since clients
        choose the names."""
        key = self._keys.get(name)
        if key is None:
            folded = fold(name)
            key = "" if folded in HOP_BY_HOP or self.strips(folded) else folded
            if len(self._keys) >= _MAX_CACHED_NAMES:
                self._keys.clear()
            self._keys[name] = key
        return key


DEFAULT_STRIP = HeaderStrip.build()


def _connection_named(values: Iterable[str]) -> set[str]:
    return {fold(token.strip()) for value in values for token in value.split(",") if token}


def clean_request_headers(
    headers: Mapping[str, str],
    *,
    drop_authorization: bool = False,
    gateway_cookie_prefix: str = GATEWAY_COOKIE_PREFIX,
    strip: HeaderStrip = DEFAULT_STRIP,
) -> CIMultiDict[str]:
    """The client's headers that may be forwarded upstream."""
    candidates: list[tuple[str, str, str]] = []
    named: set[str] = set()
    for name, value in headers.items():
        key = strip.key_of(name)
        if key:
            candidates.append((name, key, value))
        elif fold(name) == "connection":
            named |= _connection_named((value,))
    kept: CIMultiDict[str] = CIMultiDict()
    for name, key, value in candidates:
        if key in named:
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
    named = _connection_named(v for k, v in items if fold(k) == "connection")
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        key = fold(name)
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


def is_websocket_upgrade(headers: Mapping[str, str]) -> bool:
    """Whether a request asks to become a WebSocket (``Upgrade: websocket``)."""
    return headers.get("Upgrade", "").lower() == "websocket"
