"""I4: identity comes only from the gateway; spoofed headers never reach the app."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.stack import running_stack

SPOOFED = {
    "X-Gatehold-User": "1",
    "X-Gatehold-Email": "admin@example.test",
    "X-Gatehold-Tenant": "globex",
    "X-Gatehold-Roles": "admin",
    "X-Gatehold-Assertion": "forged",
    "X_Gatehold_User": "1",
    "x-forwarded-user": "admin",
    "X-Forwarded-Email": "admin@example.test",
    "X-Forwarded-Groups": "admins",
    "X-Auth-Request-User": "admin",
    "X-Auth-User": "admin",
    "X_Auth_User": "admin",
    "X-Remote-User": "admin",
    "Remote-User": "admin",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
    "Forwarded": "for=1.2.3.4;host=evil.example",
    "X-Forwarded-For": "1.2.3.4",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-HTTP-Method-Override": "DELETE",
    "X-Request-Id": "client-chosen",
    "X-Secret-Hop": "named in Connection",
}
GATEWAY_SET = {
    "x-gatehold-user",
    "x-gatehold-email",
    "x-gatehold-tenant",
    "x-gatehold-roles",
    "x-gatehold-assertion",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
}


async def test_spoofed_identity_headers_are_replaced_by_the_gateways_own(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        headers = {**SPOOFED, **stack.cookie("alice@acme.test"), "Accept": "application/json"}
        headers["Connection"] = "keep-alive, X-Secret-Hop"
        headers["Cookie"] += "; app_session=keep-me"
        response = await stack.client.get("/api/echo/who", headers=headers)
        assert response.status == 200
        seen = {k.lower(): v for k, v in (await response.json())["headers"].items()}
        jwks = await (await stack.client.get("/.gatehold/jwks.json")).json()

    for name, value in SPOOFED.items():
        lowered = name.lower()
        normal = lowered.replace("_", "-")
        assert lowered == normal or lowered not in seen, f"{name} passed through"
        if normal in GATEWAY_SET:
            assert seen[normal] != value, f"{name} passed through from the client"
        else:
            assert normal not in seen, f"{name} passed through"
    assert seen["x-gatehold-email"] == "alice@acme.test"
    assert seen["x-gatehold-tenant"] == "acme"
    assert seen["x-gatehold-roles"] == "standard"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == "gatehold.test"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["host"] == stack.ledger_url.removeprefix("http://")
    assert len(seen["x-request-id"]) == 32
    assert "__Host-gatehold" not in seen.get("cookie", ""), "the gateway cookie leaked upstream"
    assert seen["cookie"] == "app_session=keep-me"

    token = seen["x-gatehold-assertion"]
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token, key=key, algorithms=["ES256"], audience="ledger", issuer="http://gatehold.test"
    )
    assert claims["email"] == "alice@acme.test"
    assert claims["tenant"] == "acme"
    assert claims["exp"] - claims["iat"] <= 60
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key=key, algorithms=["ES256"], audience="another-app")
