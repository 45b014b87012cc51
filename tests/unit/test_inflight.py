"""The in-flight caps: per caller, per client address, trusted proxies exempt by address."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.inflight import InFlight
from gateway.ingress import canonicalize
from gateway.model import ANONYMOUS, Admitted, AuthMethod, Membership, Principal, Reason, Target


def person(user_id: str) -> Principal:
    return Principal(
        user_id, f"{user_id}@acme.test", (Membership("acme", "standard"),), AuthMethod.SESSION, 0.0
    )


def admitted(client: str) -> Admitted:
    target = canonicalize("/api/invoices")
    assert isinstance(target, Target)
    return Admitted(target, "rid", client, "http")


def request() -> web.Request:
    return make_mocked_request("GET", "/api/invoices")


def test_many_people_from_one_address_share_its_cap() -> None:
    caps = InFlight(2, per_client=3)
    entered = [request() for _ in range(3)]
    for i, r in enumerate(entered):
        assert caps.enter(r, person(str(i)), admitted("198.51.100.7")) is None
    refused = caps.enter(request(), person("9"), admitted("198.51.100.7"))
    assert refused is not None and refused.reason is Reason.IN_FLIGHT_LIMIT
    assert "client address" in refused.detail
    assert caps.enter(request(), person("9"), admitted("198.51.100.8")) is None
    caps.leave(entered[0])
    assert caps.count("address:198.51.100.7") == 2
    assert caps.count("user:0") == 0
    assert caps.enter(request(), person("9"), admitted("198.51.100.7")) is None


def test_a_refused_request_holds_nothing() -> None:
    caps = InFlight(1, per_client=5)
    first = request()
    assert caps.enter(first, person("1"), admitted("198.51.100.7")) is None
    second = request()
    assert caps.enter(second, person("1"), admitted("198.51.100.7")) is not None
    caps.leave(second)  # called for every request, counted or not
    assert caps.count("address:198.51.100.7") == 1
    caps.leave(first)
    assert caps.count("address:198.51.100.7") == 0 and caps.count("user:1") == 0


def test_anonymous_callers_count_against_both_caps_of_their_address() -> None:
    caps = InFlight(2, per_client=10)
    for _ in range(2):
        assert caps.enter(request(), ANONYMOUS, admitted("198.51.100.7")) is None
    refused = caps.enter(request(), ANONYMOUS, admitted("198.51.100.7"))
    assert refused is not None and "one caller" in refused.detail
    assert caps.count("address:198.51.100.7") == 2


def test_a_trusted_proxys_own_address_is_not_capped() -> None:
    caps = InFlight(100, per_client=1, trusted_proxies=["10.0.0.0/8"])
    for i in range(5):
        assert caps.enter(request(), person(str(i)), admitted("10.1.2.3")) is None
    assert caps.enter(request(), person("a"), admitted("198.51.100.7")) is None
    assert caps.enter(request(), person("b"), admitted("198.51.100.7")) is not None
