"""Header hygiene, pure: name folding, the strip list, the verdict cache."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.headers import DEFAULT_STRIP, HeaderStrip, clean_request_headers, fold


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("X-Gatehold-Tenant", "x-gatehold-tenant"),
        ("X.Gatehold.Tenant", "x-gatehold-tenant"),
        ("x_gatehold_tenant", "x-gatehold-tenant"),
        ("X~Gatehold+Tenant", "x-gatehold-tenant"),
        ("X__Gatehold--Tenant", "x-gatehold-tenant"),
        ("-X-Gatehold-Tenant-", "x-gatehold-tenant"),
        ("TRUE_CLIENT_IP", "true-client-ip"),
    ],
    ids=lambda v: repr(v),
)
def test_names_fold_like_the_servers_behind_read_them(name: str, folded: str) -> None:
    assert fold(name) == folded


def test_a_header_named_in_connection_is_dropped_in_any_spelling() -> None:
    headers = CIMultiDict([("Connection", "X_Secret.Hop"), ("x-secret-hop", "1"), ("A", "b")])
    assert list(clean_request_headers(headers).items()) == [("A", "b")]


def test_the_verdict_cache_stays_bounded_whatever_names_clients_send() -> None:
    strip = HeaderStrip.build()
    for index in range(10_000):
        strip.key_of(f"X-Junk-{index}")
    assert len(strip._keys) <= 4096


def test_passed_names_are_exempt_from_a_prefix_but_not_from_the_core() -> None:
    strip = HeaderStrip.build(strip=["X-Acme-*"], passed=["X-Acme-Theme", "X-User-Agent"])
    assert strip.key_of("X-Acme-Theme") == "x-acme-theme"
    assert strip.key_of("X-User-Agent") == "x-user-agent"
    assert strip.key_of("x.acme.role") == ""
    assert DEFAULT_STRIP.key_of("X-User-Agent") == ""
    with pytest.raises(ValueError, match="always removed"):
        HeaderStrip.build(passed=["X-Forwarded-User"])
