"""What apps are told about the gateway's public address: from ``server.public_url`` only."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.model import UpstreamDef
from gateway.public_address import PublicAddress
from tests.unit.test_forward_headers import ADMITTED, ALLOWED, LEDGER, forwarder, principal

CASES = {
    "http at the root": ("http://gatehold.test", (("http", "gatehold.test", ""))),
    "https with a port": ("https://gate.example:8443/", ("https", "gate.example:8443", "")),
    "an upper-case scheme": ("HTTPS://gate.example", ("https", "gate.example", "")),
    "under a path": ("https://gate.example/portal/", ("https", "gate.example", "/portal")),
}


@pytest.mark.parametrize(("url", "parts"), CASES.values(), ids=CASES.keys())
def test_the_parts_of_the_public_url(url: str, parts: tuple[str, str, str]) -> None:
    assert PublicAddress.of(url) == PublicAddress(*parts)


def test_a_prefix_is_sent_only_when_there_is_one() -> None:
    assert dict(PublicAddress.of("https://g.example").forwarded_headers()) == {
        "X-Forwarded-Host": "g.example",
        "X-Forwarded-Proto": "https",
    }
    under = dict(PublicAddress.of("https://g.example/portal").forwarded_headers())
    assert under["X-Forwarded-Prefix"] == "/portal"


SPOOFED = [
    ("Host", "evil.test"),
    ("X-Forwarded-Host", "evil.test"),
    ("X_Forwarded_Host", "evil.test"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Prefix", "/evil"),
]


@pytest.mark.parametrize("preserve", [False, True], ids=["app's own host", "preserve_host"])
def test_host_and_forwarded_headers_come_from_the_gateway(preserve: bool) -> None:
    upstream = UpstreamDef(LEDGER.name, LEDGER.url, preserve_host=preserve)
    request = make_mocked_request("GET", "/api/invoices/7", headers=CIMultiDict(SPOOFED))
    headers = forwarder(upstream)._headers(request, ADMITTED, principal(), ALLOWED, upstream)
    assert headers.getall("Host") == ["gate.example.test" if preserve else "127.0.0.1:8123"]
    assert headers.getall("X-Forwarded-Host") == ["gate.example.test"]
    assert headers.getall("X-Forwarded-Proto") == ["https"]
    assert "X-Forwarded-Prefix" not in headers
    assert "evil.test" not in headers.values()
