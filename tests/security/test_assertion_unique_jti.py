"""Each forwarded request carries its own identity assertion, with a unique ``jti``.

An assertion reused for every request of a caller during half its lifetime gives an
upstream nothing to detect a replayed token with. Each must now name its request:
a fresh 128-bit ``jti``, verified against the gateway's published JWKS.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt

from gateway.assertion import AssertionSigner
from gateway.model import AuthMethod, Membership, Principal
from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.stack import running_stack

REQUESTS = 5


def verified(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key,
        algorithms=["ES256"],
        audience="ledger",
        issuer="http://gatehold.test",
        options={"require": ["jti", "exp", "iat", "nbf", "sub", "aud", "iss"]},
    )
    return claims


def jti_bits(jti: str) -> int:
    return len(base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4))) * 8


async def test_every_forwarded_request_has_its_own_assertion_and_jti(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        headers = {**stack.cookie("alice@acme.test"), "Accept": "application/json"}
        seen = []
        for _ in range(REQUESTS):
            response = await stack.client.get("/api/echo/who", headers=headers)
            assert response.status == 200
            echoed = (await response.json())["headers"]
            seen.append(echoed["X-Gatehold-Assertion"])
        jwks = await (await stack.client.get("/.gatehold/jwks.json")).json()
    tokens = seen
    assert len(set(tokens)) == REQUESTS, "an assertion was reused for another request"
    claims = [verified(token, jwks) for token in tokens]
    jtis = [c["jti"] for c in claims]
    assert len(set(jtis)) == REQUESTS
    assert all(jti_bits(j) >= 128 for j in jtis)
    assert all(c["email"] == "alice@acme.test" and c["tenant"] == "acme" for c in claims)


def test_the_signer_never_repeats_a_jti_for_the_same_claims(tmp_path: Path) -> None:
    signer = AssertionSigner.load_or_create(
        tmp_path / "assertion.pem", issuer="http://gatehold.test", ttl_seconds=60
    )
    principal = Principal(
        "7", "p@acme.test", (Membership("acme", "standard"),), AuthMethod.SESSION, 0.0
    )
    now = time.time()
    tokens = [
        signer.sign(
            principal=principal, tenant="acme", roles=("standard",), audience="ledger", now=now
        )
        for _ in range(2000)
    ]
    jtis = {verified(t, signer.jwks())["jti"] for t in tokens}
    assert len(jtis) == len(tokens)
    first = verified(tokens[0], signer.jwks())
    assert first["exp"] - first["iat"] == 60
    assert first["roles"] == ["standard"] and first["auth_method"] == "session"
