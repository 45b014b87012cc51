"""The signed identity assertion: claims, audience, lifetime, a ``jti`` per token, the JWKS.

Tokens are assembled by hand for speed (see the module docstring), so each is checked
here with PyJWT, an independent verifier, against the published JWKS. (Uniqueness of
``jti`` over many requests through the running gateway is covered in
``tests/security/test_assertion_unique_jti.py``.)
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.assertion import AssertionSigner
from gateway.model import AuthMethod, Membership, Principal

ISSUER = "https://gate.example.test"


def person(
    user_id: str = "42", email: str = "alice@acme.test", method: AuthMethod = AuthMethod.SESSION
) -> Principal:
    return Principal(user_id, email, (Membership("acme", "standard"),), method, time.time() - 30)


def new_signer(ttl: float = 60) -> AssertionSigner:
    return AssertionSigner(ec.generate_private_key(ec.SECP256R1()), issuer=ISSUER, ttl_seconds=ttl)


def sign(
    signer: AssertionSigner,
    who: Principal | None = None,
    *,
    tenant: str | None = "acme",
    roles: tuple[str, ...] = ("standard",),
    audience: str = "ledger",
    now: float | None = None,
) -> str:
    return signer.sign(
        principal=who or person(),
        tenant=tenant,
        roles=roles,
        audience=audience,
        now=time.time() if now is None else now,
    )


def verified(
    token: str, signer: AssertionSigner, *, audience: str = "ledger", **options: Any
) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict(signer.jwks())
    claims: dict[str, Any] = jwt.decode(
        token,
        key=keys[jwt.get_unverified_header(token)["kid"]],
        algorithms=["ES256"],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"], **options},
    )
    return claims


def test_the_claims_say_who_in_which_tenant_for_which_upstream() -> None:
    signer = new_signer()
    now = float(int(time.time()))
    token = sign(signer, roles=("standard", "exporter"), now=now)
    assert verified(token, signer) == {
        "iss": ISSUER,
        "sub": "42",
        "email": "alice@acme.test",
        "tenant": "acme",
        "roles": ["standard", "exporter"],
        "auth_method": "session",
        "aud": "ledger",
        "jti": verified(token, signer)["jti"],
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 60,
    }


def test_the_header_names_the_key_the_jwks_publishes() -> None:
    signer = new_signer()
    header = jwt.get_unverified_header(sign(signer))
    (published,) = signer.jwks()["keys"]
    assert header == {"alg": "ES256", "kid": signer.kid, "typ": "JWT"}
    assert published["kid"] == signer.kid
    assert published["alg"] == "ES256" and published["use"] == "sig"
    assert published["kty"] == "EC" and published["crv"] == "P-256"
    assert "d" not in published, "the private part must never be published"


def test_a_token_for_one_upstream_is_refused_by_another() -> None:
    signer = new_signer()
    token = sign(signer, audience="ledger")
    with pytest.raises(jwt.InvalidAudienceError):
        verified(token, signer, audience="billing")


def test_a_token_expires_after_its_ttl() -> None:
    signer = new_signer(ttl=30)
    old = sign(signer, now=time.time() - 31)
    with pytest.raises(jwt.ExpiredSignatureError):
        verified(old, signer)
    fresh = sign(signer, now=time.time() - 29)
    assert verified(fresh, signer)["exp"] - verified(fresh, signer)["iat"] == 30


def test_a_token_from_the_future_is_not_yet_valid() -> None:
    signer = new_signer()
    with pytest.raises(jwt.ImmatureSignatureError):
        verified(sign(signer, now=time.time() + 300), signer)


def test_every_token_has_its_own_jti_even_for_the_same_caller_and_second() -> None:
    signer = new_signer()
    tokens = [sign(signer) for _ in range(50)]
    assert len({verified(t, signer)["jti"] for t in tokens}) == 50


def test_with_reuse_one_token_serves_the_same_caller_for_that_long_only() -> None:
    signer = AssertionSigner(
        ec.generate_private_key(ec.SECP256R1()), issuer=ISSUER, ttl_seconds=60, reuse_seconds=10
    )
    start = time.time()
    first = sign(signer, now=start)
    assert sign(signer, now=start + 9.9) == first, "reused inside the window"
    assert sign(signer, now=start + 10.1) != first, "a new token (and jti) after it"
    assert sign(signer, audience="billing", now=start + 1) != first, "never across upstreams"
    assert sign(signer, person("43", "bob@acme.test"), now=start + 1) != first
    assert sign(signer, tenant="globex", now=start + 1) != first


def test_reuse_is_capped_at_half_the_lifetime() -> None:
    signer = AssertionSigner(
        ec.generate_private_key(ec.SECP256R1()), issuer=ISSUER, ttl_seconds=60, reuse_seconds=600
    )
    assert signer.reuse == 30, "a reused token always has half its lifetime left"


def test_cached_claims_never_cross_callers_tenants_roles_or_audiences() -> None:
    signer = new_signer()
    variants: list[tuple[Principal, str | None, tuple[str, ...], str]] = [
        (person(), "acme", ("standard",), "ledger"),
        (person("43", "bob@acme.test"), "acme", ("standard",), "ledger"),
        (person(), "globex", ("standard",), "ledger"),
        (person(), None, (), "ledger"),
        (person(), "acme", ("admin",), "ledger"),
        (person(), "acme", ("standard",), "billing"),
        (person(method=AuthMethod.API_KEY), "acme", ("standard",), "ledger"),
    ]
    for _ in range(2):  # the second round is served from the claims cache
        for who, tenant, roles, audience in variants:
            token = sign(signer, who, tenant=tenant, roles=roles, audience=audience)
            claims = verified(token, signer, audience=audience)
            assert (claims["sub"], claims["email"], claims["auth_method"]) == (
                who.user_id,
                who.email,
                who.auth_method.value,
            )
            assert (claims["tenant"], claims["roles"]) == (tenant, list(roles))


@pytest.mark.parametrize(
    "email", ['o"brien@acme.test', "zoë@acme.test", "back\\slash@acme.test", "a}b@acme.test"]
)
def test_claims_with_characters_json_must_escape_stay_valid(email: str) -> None:
    signer = new_signer()
    token = sign(signer, person(email=email))
    assert verified(token, signer)["email"] == email
    payload = token.split(".")[1]
    assert json.loads(jwt.utils.base64url_decode(payload))["email"] == email


def test_a_tampered_token_does_not_verify() -> None:
    signer = new_signer()
    header, payload, signature = sign(signer).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["tenant"] = "globex"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verified(f"{header}.{forged}.{signature}", signer)


def test_the_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "assertion.pem"
    path.parent.mkdir()
    first = AssertionSigner.load_or_create(path, issuer=ISSUER, ttl_seconds=60)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = AssertionSigner.load_or_create(path, issuer=ISSUER, ttl_seconds=60)
    assert second.kid == first.kid
    assert verified(sign(first), second)["sub"] == "42", "a restart keeps verifying"


def test_a_key_file_that_is_not_an_ec_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "assertion.pem"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    with pytest.raises(ValueError, match="not an EC private key"):
        AssertionSigner.load_or_create(path, issuer=ISSUER, ttl_seconds=60)
