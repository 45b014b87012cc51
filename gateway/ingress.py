"""Ingress: one canonical target per request (I2), request ids, client address.

The canonical form is computed once, from the raw request line, and is both what
routes match and what the upstream receives. Anything that different servers could
read differently is refused with 400 rather than "repaired": encoded slashes and
backslashes, dot segments, empty segments, path parameters (``;``), control bytes,
malformed percent-escapes or UTF-8, double encoding, and Unicode compatibility forms
such as the fullwidth solidus.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
import unicodedata
from collections.abc import Sequence
from urllib.parse import quote, unquote_plus, unquote_to_bytes, urlsplit

from gateway.model import Admitted, IncomingRequest, Reason, Rejection, Target
from gateway.params import name_from_key, related

METHOD_OVERRIDE = name_from_key("_method")
"""Read from the query by Symfony and PHP apps in every spelling PHP folds to it."""

# Characters a canonical segment keeps as they are (RFC 3986 unreserved, sub-delims
# without ';', and ':' '@'). Everything else is percent-encoded with upper-case hex.
SEGMENT_SAFE = "!$&'()*+,=:@~"
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@]+)*/?")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_QUERY_CHAR = re.compile(r"[\x00-\x20\x7f#]")
_HOST = re.compile(r"(?:[A-Za-z0-9.\-_~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
"""A Host header: a name or IPv4 address, or a bracketed IPv6 one, and a port."""
HTTP_VERSIONS = ((1, 0), (1, 1))


def _reject(detail: str) -> Rejection:
    return Rejection(Reason.TARGET_AMBIGUOUS, detail)


def canonicalize(
    raw_target: str, *, public_host: str | None = None, max_length: int = 8192
) -> Target | Rejection:
    """The one canonical ``Target`` for a raw request-target, or why it is ambiguous."""
    if not raw_target or len(raw_target) > max_length:
        return _reject("the request target is empty or too long")
    if not raw_target.isascii() or _BAD_QUERY_CHAR.search(raw_target):
        return _reject("the request target holds spaces, control or non-ASCII characters")
    if not raw_target.startswith("/"):
        origin_form = _origin_form(raw_target, public_host)
        if origin_form is None:
            return _reject("absolute targets are accepted only for this gateway's own host")
        raw_target = origin_form
    path, _, query = raw_target.partition("?")
    canonical = _canonical_path(path)
    if isinstance(canonical, Rejection):
        return canonical
    problem = _query_problem(query)
    return _reject(problem) if problem else Target(canonical, query)


def _origin_form(raw_target: str, public_host: str | None) -> str | None:
    """The origin form of an absolute target naming ``public_host``, else ``None``.

    ``urlsplit`` raises on a bracketed host it cannot read (``http://[x/``): that is
    a refusal like any other host that is not ours, never an error.
    """
    if not public_host:
        return None
    try:
        parts = urlsplit(raw_target)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    if parts.netloc.lower() != public_host.lower() or not parts.path.startswith("/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _canonical_path(path: str) -> str | Rejection:
    if "\\" in path or ";" in path:
        return _reject("backslashes and ';' path parameters are not accepted")
    if _PLAIN_PATH.fullmatch(path) and "/./" not in path + "/" and "/../" not in path + "/":
        if "//" not in path:
            return path  # fast path: nothing to decode, already canonical
    segments = path[1:].split("/")
    canonical: list[str] = []
    for index, segment in enumerate(segments):
        if not segment:
            if index == len(segments) - 1:
                canonical.append("")  # "/" itself, or one trailing slash
                continue
            return _reject("empty path segments ('//') are ambiguous")
        decoded = _decode_segment(segment)
        if isinstance(decoded, Rejection):
            return decoded
        canonical.append(quote(decoded, safe=SEGMENT_SAFE))
    return "/" + "/".join(canonical)


def _decode_segment(segment: str) -> str | Rejection:
    if _BAD_ESCAPE.search(segment):
        return _reject("a '%' is not followed by two hex digits")
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8", "strict")
    except UnicodeDecodeError:
        return _reject("the path is not valid UTF-8")
    if decoded in (".", ".."):
        return _reject("dot segments are not accepted")
    if "/" in decoded or "\\" in decoded:
        return _reject("encoded slashes and backslashes are not accepted")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return _reject("control characters are not accepted")
    if "%" in decoded and _ENCODED_ESCAPE.search(decoded):
        return _reject("double percent-encoding is not accepted")
    if not decoded.isascii() and unicodedata.normalize("NFKC", decoded) != decoded:
        return _reject("Unicode compatibility characters (e.g. fullwidth '/') are not accepted")
    return decoded


def _query_problem(query: str) -> str:
    if not query:
        return ""
    if _BAD_ESCAPE.search(query):
        return "a '%' in the query is not followed by two hex digits"
    if "%" in query or "method" in query.lower():
        for pair in query.replace(";", "&").split("&"):
            if related(unquote_plus(pair.split("=", 1)[0]), METHOD_OVERRIDE):
                return "method override parameters ('_method') are not accepted"
    return ""


def _head_problem(request: IncomingRequest) -> Rejection | None:
    """A request line or Host header that other servers could read differently.

    aiohttp's parser takes ``HTTP/2.0`` on a text connection and any bytes in
    ``Host`` (``gatehold.test/admin``, ``a@b``); neither is HTTP/1 another server
    would read the same way, so both are refused rather than passed on.
    """
    if request.version not in HTTP_VERSIONS:  # a named tuple: compared as one
        return Rejection(Reason.REQUEST_MALFORMED, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    hosts = request.headers.getall("Host", [])
    if len(hosts) > 1 or (hosts and hosts[0] and not _HOST.fullmatch(hosts[0])):
        return Rejection(Reason.HEADER_INVALID, "the Host header is not one host and port")
    return None


def new_request_id() -> str:
    """32 hex digits: milliseconds since the epoch (12), then 80 random bits (20).

    Unique without coordination between processes, and roughly time-ordered, so the
    audit log's ``request_id`` index grows at its end. With purely random ids every
    insert lands on a random page of that index: on a log of 300,000 records that
    doubled the CPU cost of each audit commit (``bench/audit_writer.py --prefill``).
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class TrustedProxies:
    """The load balancers allowed to say who the client is (``server.trusted_proxies``)."""

    KNOWN_LIMIT = 4096
    """Addresses whose answer is kept; beyond it the memory starts again (hops in
    ``X-Forwarded-For`` are chosen by clients, so it must stay bounded)."""

    def __init__(self, networks: Sequence[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: str) -> bool:
        """Whether ``address`` (an IP in text form) is one of them; junk never is.

        Every request asks several times about the same few peers, and parsing an
        address with ``ipaddress`` costs more than the rest of ingress: answers are kept.
        """
        known = self._known.get(address)
        if known is None:
            if len(self._known) >= self.KNOWN_LIMIT:
                self._known.clear()
            known = self._known[address] = self._judge(address)
        return known

    def _judge(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


class Ingress:
    """Admits a request: canonical target, fresh request id, real client address."""

    def __init__(self, *, public_url: str, trusted_proxies: Sequence[str] = ()) -> None:
        self._public_host = urlsplit(public_url).netloc
        self._trusted = TrustedProxies(trusted_proxies)

    def admit(self, request: IncomingRequest) -> Admitted | Rejection:
        """``Admitted`` with the canonical target, or a ``Rejection`` (400)."""
        target = canonicalize(request.raw_path, public_host=self._public_host)
        if isinstance(target, Rejection):
            return target
        headers = request.headers
        problem = _head_problem(request)
        if problem is not None:
            return problem
        lengths = headers.getall("Content-Length", [])
        if len(lengths) > 1 or (lengths and "Transfer-Encoding" in headers):
            return Rejection(Reason.HEADER_INVALID, "conflicting message length headers")
        if len(headers.getall("Authorization", ())) > 1:
            # Identity reads one; the app might read the other, which nobody checked.
            return Rejection(Reason.HEADER_INVALID, "more than one Authorization header")
        scheme = request.scheme
        if self._behind_trusted_proxy(request):
            proto = headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
            scheme = proto if proto in ("http", "https") else scheme
        return Admitted(target, new_request_id(), self.client_address(request), scheme)

    def client_address(self, request: IncomingRequest) -> str:
        """The client's address: the socket peer, or what trusted proxies say it was.

        The one answer for every use — audit rows, rate limits, sessions — so that behind
        a load balancer clients are told apart, and nobody else can choose their address.
        """
        peer = request.remote or ""
        if not self._behind_trusted_proxy(request):
            return peer
        return self._client_behind_proxies(peer, request.headers.getall("X-Forwarded-For", []))

    def _behind_trusted_proxy(self, request: IncomingRequest) -> bool:
        return bool(self._trusted) and (request.remote or "") in self._trusted

    def _client_behind_proxies(self, peer: str, forwarded_for: list[str]) -> str:
        """The right-most X-Forwarded-For address that is not itself a trusted proxy."""
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in self._trusted:
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer
        return peer
