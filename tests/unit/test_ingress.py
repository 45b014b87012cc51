"""Ingress: one canonical target (I2), table of bypass tricks, and properties."""

from __future__ import annotations

import time
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from gateway.ingress import Ingress, canonicalize, new_request_id
from gateway.model import Admitted, Reason, Rejection, Target

REFUSED = {
    "dot-dot": "/api/../admin",
    "encoded dot-dot": "/%2e%2e/admin",
    "double slash": "//admin",
    "encoded slash": "/admin%2f",
    "matrix parameter": "/admin;x=1",
    "tomcat dot-dot-semicolon": "/public/..;/admin",
    "NUL": "/admin%00",
    "dot": "/admin/.",
    "fullwidth solidus": "/admin%EF%BC%8Fx",
    "backslash": "/admin\\x",
    "encoded backslash": "/admin%5cx",
    "overlong UTF-8": "/%C0%AE%C0%AE/admin",
    "invalid UTF-8": "/%FF",
    "double encoding": "/%252e%252e/admin",
    "lone percent": "/admin%",
    "bad escape": "/admin%zz",
    "another host": "http://evil.example/admin",
    "asterisk": "*",
    "control byte": "/admin\x01",
    "space": "/a b",
    "fragment": "/a#b",
    "method override": "/a?_method=DELETE",
    "encoded method override": "/a?%5Fmethod=PUT",
    "method override, dot for underscore (PHP)": "/a?.method=DELETE",
    "method override, bracket for underscore (PHP)": "/a?[method=DELETE",
    "method override as an array": "/a?_method[]=DELETE",
    "method override after a semicolon": "/a?x=1;_method=DELETE",
    "method override, letters encoded": "/a?_%6Dethod=DELETE",
    "method override, encoded twice": "/a?%255Fmethod=DELETE",
    "method override in upper case": "/a?_METHOD=DELETE",
    "bad query escape": "/a?x=%g1",
    "non-ASCII byte": "/caf\u00e9",
}
ACCEPTED = {
    "plain": ("/api/invoices/7", "/api/invoices/7"),
    "case is kept": ("/ADMIN", "/ADMIN"),
    "unreserved escapes are decoded": ("/a%41/%7Euser", "/aA/~user"),
    "hex is upper-cased": ("/x%c3%a9", "/x%C3%A9"),
    "a trailing slash is kept": ("/api/", "/api/"),
    "the root": ("/", "/"),
    "dots inside names": ("/a/.well-known/x.json", "/a/.well-known/x.json"),
    "our own host in absolute form": ("http://gatehold.test/a?b=1", "/a"),
}


@pytest.mark.parametrize("target", REFUSED.values(), ids=REFUSED.keys())
def test_ambiguous_targets_are_refused(target: str) -> None:
    result = canonicalize(target, public_host="gatehold.test")
    assert isinstance(result, Rejection) and result.reason is Reason.TARGET_AMBIGUOUS


@pytest.mark.parametrize(("target", "canonical"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_targets_have_one_canonical_form(target: str, canonical: str) -> None:
    result = canonicalize(target, public_host="gatehold.test")
    assert isinstance(result, Target) and result.path == canonical


TOKENS = [
    *"aZ09-._~;:@!$&'()*+,=/\\?#% ",
    "%2e",
    "%2F",
    "%5C",
    "%00",
    "%25",
    "%41",
    "%C3%A9",
    "%EF%BC%8F",
    "%C0%AE",
    "%zz",
    "..",
    "\u00e9",
]


@given(st.lists(st.sampled_from(TOKENS), max_size=20).map(lambda t: "/" + "".join(t)))
def test_canonical_forms_are_fixed_points_and_unambiguous(raw: str) -> None:
    result = canonicalize(raw)
    if isinstance(result, Rejection):
        return
    assert canonicalize(result.raw) == result, "canonicalizing twice changes nothing"
    for segment in result.path.split("/")[1:]:
        decoded = unquote(segment)
        assert decoded not in (".", "..")
        assert "/" not in decoded and "\\" not in decoded
        assert not any(ord(c) < 0x20 for c in decoded)


def admit(path: str, remote: str, **headers: str) -> Admitted | Rejection:
    ingress = Ingress(public_url="https://gatehold.test", trusted_proxies=["10.0.0.0/8"])
    request = make_mocked_request("GET", path, headers=headers)
    request._transport_peername = (remote, 1234)  # type: ignore[attr-defined]
    return ingress.admit(request)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    trusted = admit(
        "/x",
        "10.1.2.3",
        **{"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.2", "X-Forwarded-Proto": "https"},
    )
    assert isinstance(trusted, Admitted)
    assert (trusted.client_ip, trusted.scheme) == ("203.0.113.9", "https")
    untrusted = admit("/x", "198.51.100.7", **{"X-Forwarded-For": "6.6.6.6"})
    assert isinstance(untrusted, Admitted) and untrusted.client_ip == "198.51.100.7"


def test_every_request_gets_a_fresh_request_id_whatever_the_client_says() -> None:
    first, second = admit("/x", "1.2.3.4", **{"X-Request-Id": "mine"}), admit("/x", "1.2.3.4")
    assert isinstance(first, Admitted) and isinstance(second, Admitted)
    assert first.request_id != "mine" and len(first.request_id) == 32
    assert first.request_id != second.request_id


def test_request_ids_are_unique_hex_and_ordered_by_time() -> None:
    """Time-ordered ids keep the audit log's request_id index growing at its end."""
    before = new_request_id()
    time.sleep(0.002)
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert all(before[:12] < i[:12] for i in ids)
    assert abs(int(ids[-1][:12], 16) / 1000 - time.time()) < 5


def test_trusted_proxies_match_addresses_in_their_networks_only() -> None:
    from gateway.ingress import TrustedProxies

    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies
    assert "10.1.2.3" in proxies and "::1" in proxies
    assert "11.0.0.1" not in proxies
    for junk in ("", "unknown", "10.0.0.1, 10.0.0.2", "10.0.0.1:443", "[::1]"):
        assert junk not in proxies, junk
    assert not TrustedProxies()


def test_trusted_proxies_answer_alike_when_asked_again_and_past_the_memory_limit() -> None:
    """Answers are kept per address; asking again, or after the memory of chosen
    ``X-Forwarded-For`` hops starts over, gives the same answer."""
    from gateway.ingress import TrustedProxies

    proxies = TrustedProxies(["10.0.0.0/8"])
    asked = ["10.0.0.1", "11.0.0.1", "junk", "10.255.255.255"]
    first = [address in proxies for address in asked]
    assert first == [True, False, False, True]
    for n in range(TrustedProxies.KNOWN_LIMIT + 10):  # clients choosing many hops
        assert f"192.0.{n // 256 % 256}.{n % 256}" not in proxies
    assert len(proxies._known) <= TrustedProxies.KNOWN_LIMIT
    assert [address in proxies for address in asked] == first
