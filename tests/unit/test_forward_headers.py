"""The headers an upstream receives: only the gateway speaks for identity (I4).

``Forwarder._headers`` builds them from the client's headers, the admitted request, the
principal and the decision. The last test sends a request through ``Forwarder.send`` to
a real app on a loopback port and reads what arrived on the wire.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.assertion import AssertionSigner
from gateway.forward import Forwarder
from gateway.model import (
    Admitted,
    AuthMethod,
    Decision,
    Membership,
    Principal,
    Reason,
    Route,
    RouteMatch,
    Target,
    UpstreamDef,
)

PUBLIC_URL = "https://gate.example.test"
REQUEST_ID = "ab" * 16
ADMITTED = Admitted(Target("/api/invoices/7", "view=full"), REQUEST_ID, "127.0.0.7", "https")
LEDGER = UpstreamDef("ledger", "http://127.0.0.1:8123")
ALLOWED = Decision(True, Reason.ROLE_ALLOWED, "read", "acme", ("standard", "exporter"))

SPOOFED = {
    "X-Gatehold-User": "1",
    "X-Gatehold-Email": "admin@acme.test",
    "X-Gatehold-Tenant": "globex",
    "X_Gatehold_Roles": "admin",
    "X.Gatehold.Assertion": "eyJ.forged.sig",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "http",
    "Forwarded": "for=10.0.0.1;host=evil.example",
    "X-Real-IP": "10.0.0.1",
    "Remote-User": "admin",
    "X-Request-Id": "chosen-by-client",
    "Host": "evil.example",
}


def principal(method: AuthMethod = AuthMethod.SESSION) -> Principal:
    return Principal(
        "42", "alice@acme.test", (Membership("acme", "standard"),), method, time.time() - 100
    )


def signer() -> AssertionSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    return AssertionSigner(key, issuer=PUBLIC_URL, ttl_seconds=60)


def forwarder(upstream: UpstreamDef = LEDGER, *, at: float | None = None) -> Forwarder:
    """A forwarder whose clock stands still at ``at`` (a moment ago by default)."""
    moment = float(int(time.time())) - 5 if at is None else at
    return Forwarder(
        {upstream.name: upstream}, public_url=PUBLIC_URL, signer=signer(), clock=lambda: moment
    )


def built(
    client_headers: dict[str, str] | list[tuple[str, str]],
    who: Principal | None,
    decision: Decision = ALLOWED,
    *,
    forward: Forwarder | None = None,
) -> CIMultiDict[str]:
    request = make_mocked_request("GET", "/api/invoices/7", headers=CIMultiDict(client_headers))
    return (forward or forwarder())._headers(request, ADMITTED, who, decision, LEDGER)


def verified(token: str, jwks: dict[str, Any], audience: str = "ledger") -> dict[str, Any]:
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key,
        algorithms=["ES256"],
        audience=audience,
        issuer=PUBLIC_URL,
        options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]},
    )
    return claims


def gatehold_headers(headers: CIMultiDict[str]) -> dict[str, list[str]]:
    names = {
        n for n in headers if n.lower().replace("_", "-").replace(".", "-")[:11] == "x-gatehold-"
    }
    return {n: headers.getall(n) for n in names}


@pytest.mark.parametrize("who", [None, principal()], ids=["anonymous", "signed in"])
def test_spoofed_identity_and_forwarding_headers_never_reach_the_upstream(
    who: Principal | None,
) -> None:
    headers = built(SPOOFED, who)
    for name, value in SPOOFED.items():
        assert value not in headers.getall(name, []), name
    assert all(value not in headers.values() for value in SPOOFED.values())


def test_an_anonymous_request_carries_no_identity_at_all() -> None:
    headers = built(SPOOFED, None)
    assert gatehold_headers(headers) == {}


def test_the_gateway_sets_where_the_request_came_from() -> None:
    headers = built(SPOOFED, principal())
    assert headers.getall("Host") == ["127.0.0.1:8123"]
    assert headers.getall("X-Forwarded-For") == ["127.0.0.7"], "not appended to the client's"
    assert headers.getall("X-Forwarded-Proto") == ["https"]
    assert headers.getall("X-Forwarded-Host") == ["gate.example.test"]
    assert headers.getall("X-Request-Id") == [REQUEST_ID]
    assert "Forwarded" not in headers


def test_identity_headers_come_from_the_principal_and_the_decision_once_each() -> None:
    headers = built(SPOOFED, principal())
    assert {n.lower(): v for n, v in gatehold_headers(headers).items()} == {
        "x-gatehold-user": ["42"],
        "x-gatehold-email": ["alice@acme.test"],
        "x-gatehold-tenant": ["acme"],
        "x-gatehold-roles": ["standard,exporter"],
        "x-gatehold-assertion": [headers["X-Gatehold-Assertion"]],
    }


def test_no_tenant_header_when_the_decision_names_no_tenant() -> None:
    forward = forwarder()
    untenanted = Decision(True, Reason.ROLE_ALLOWED, "read", None, ())
    headers = built({"X-Gatehold-Tenant": "globex"}, principal(), untenanted, forward=forward)
    assert "X-Gatehold-Tenant" not in headers
    assert headers["X-Gatehold-Roles"] == ""
    claims = verified(headers["X-Gatehold-Assertion"], forward.signer.jwks())
    assert claims["tenant"] is None and claims["roles"] == []


@pytest.mark.parametrize(
    ("method", "kept"),
    [
        (AuthMethod.BEARER_JWT, False),
        (AuthMethod.API_KEY, False),
        (AuthMethod.SESSION, True),
        (AuthMethod.MAGIC_LINK, True),
        (AuthMethod.OIDC, True),
        (None, True),
    ],
    ids=str,
)
def test_authorization_is_dropped_only_when_it_was_the_gateways_credential(
    method: AuthMethod | None, kept: bool
) -> None:
    who = principal(method) if method is not None else None
    authorization = "Bearer ghk_secret" if not kept else "Basic YXBwOnVzZXI="
    headers = built({"Authorization": authorization}, who)
    assert headers.getall("Authorization", []) == ([authorization] if kept else [])


def test_the_gateways_session_cookie_is_not_forwarded_but_the_apps_are() -> None:
    cookie = "app_session=s1; __Host-gatehold=secret-session; __Host-gatehold-csrf=t; lang=en"
    headers = built({"Cookie": cookie}, principal())
    assert headers.getall("Cookie") == ["app_session=s1; lang=en"]
    only_ours = built({"Cookie": "__Host-gatehold=secret-session"}, principal())
    assert "Cookie" not in only_ours


def test_hop_by_hop_headers_and_those_connection_names_are_dropped() -> None:
    client = {
        "Connection": "keep-alive, X-Internal-Flag",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic eDp5",
        "X-Internal-Flag": "1",
        "Accept": "application/json",
    }
    headers = built(client, principal())
    for name in ("Connection", "Keep-Alive", "TE", "Proxy-Authorization", "X-Internal-Flag"):
        assert name not in headers, name
    assert headers["Accept"] == "application/json"


def test_the_assertion_verifies_against_the_jwks_and_names_this_request() -> None:
    moment = float(int(time.time())) - 5
    forward = forwarder(at=moment)
    headers = built({}, principal(), forward=forward)
    claims = verified(headers["X-Gatehold-Assertion"], forward.signer.jwks())
    assert claims["iss"] == PUBLIC_URL and claims["aud"] == "ledger"
    assert claims["sub"] == "42" and claims["email"] == "alice@acme.test"
    assert claims["tenant"] == "acme" and claims["roles"] == ["standard", "exporter"]
    assert claims["auth_method"] == "session"
    assert claims["iat"] == int(moment) and claims["exp"] == int(moment) + 60
    with pytest.raises(jwt.InvalidAudienceError):
        verified(headers["X-Gatehold-Assertion"], forward.signer.jwks(), audience="billing")
    again = built({}, principal(), forward=forward)["X-Gatehold-Assertion"]
    assert verified(again, forward.signer.jwks())["jti"] != claims["jti"]


def test_an_assertion_from_another_key_does_not_verify() -> None:
    token = built({}, principal())["X-Gatehold-Assertion"]
    other = forwarder().signer.jwks()
    with pytest.raises(KeyError):  # no key of that kid in the other set
        verified(token, other)
    with pytest.raises(jwt.InvalidSignatureError):  # nor does the signature fit its key
        jwt.decode(
            token,
            key=jwt.PyJWK.from_dict(other["keys"][0]),
            algorithms=["ES256"],
            audience="ledger",
        )


# --- what arrives on the wire ---------------------------------------------------------


@asynccontextmanager
async def recording_app() -> AsyncIterator[tuple[str, list[CIMultiDictProxy[str]]]]:
    """An app on a loopback port that keeps the headers of every request it gets."""
    seen: list[CIMultiDictProxy[str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_what_the_upstream_receives_on_the_wire() -> None:
    async with recording_app() as (url, seen):
        upstream = UpstreamDef("ledger", url)
        forward = forwarder(upstream)
        await forward.start()
        try:
            client = CIMultiDict(
                [
                    *SPOOFED.items(),
                    ("X-Gatehold-Tenant", "initech"),
                    ("Authorization", "Basic eA=="),
                ]
            )
            request = make_mocked_request("GET", "/api/invoices/7", headers=client)
            route = Route("invoice-read", "/api/invoices/{id}", frozenset({"GET"}), "ledger")
            reply = await forward.send(
                request,
                admitted=ADMITTED,
                principal=principal(),
                match=RouteMatch(route, {"id": "7"}),
                decision=ALLOWED,
                body=None,
            )
            assert reply.status == 200 and reply.headers["X-Request-Id"] == REQUEST_ID
            assert reply.response is not None
            reply.response.release()
        finally:
            await forward.close()
    (arrived,) = seen
    assert arrived.getall("Host") == [url.removeprefix("http://")]
    assert arrived.getall("X-Gatehold-Tenant") == ["acme"]
    assert arrived.getall("X-Gatehold-User") == ["42"]
    assert arrived.getall("X-Forwarded-For") == ["127.0.0.7"]
    assert arrived.getall("X-Request-Id") == [REQUEST_ID]
    assert arrived.getall("Authorization") == ["Basic eA=="]
    assert not any(value in arrived.values() for value in SPOOFED.values())
    claims = verified(arrived["X-Gatehold-Assertion"], forward.signer.jwks())
    assert claims["tenant"] == "acme"
