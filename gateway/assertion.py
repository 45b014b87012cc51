"""The signed identity assertion sent upstream (``X-Gatehold-Assertion``) and its JWKS.

ES256 over a P-256 key created on first start. Signing is on the hot path, so a token
is reused for the same claims while more than half of its lifetime remains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.model import Principal

CacheKey = tuple[str, str, str | None, tuple[str, ...], str, str]


class AssertionSigner:
    """Signs short-lived ES256 assertions and publishes the public key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str, ttl_seconds: float) -> None:
        self._key = key
        self.issuer = issuer
        self.ttl = int(ttl_seconds)
        public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        self.kid = jwt.PyJWK.from_dict(public, algorithm="ES256").key_id or _thumbprint(public)
        self._jwk = {**public, "kid": self.kid, "alg": "ES256", "use": "sig"}
        self._cache: TTLCache[CacheKey, tuple[str, float]] = TTLCache(
            maxsize=50_000, ttl=max(self.ttl / 2, 1)
        )

    @classmethod
    def load_or_create(cls, key_path: Path, *, issuer: str, ttl_seconds: float) -> AssertionSigner:
        """Load the PEM key, creating it (mode 0600) on first start."""
        if key_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC private key")
            return cls(loaded, issuer=issuer, ttl_seconds=ttl_seconds)
        key = ec.generate_private_key(ec.SECP256R1())
        key_path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        return cls(key, issuer=issuer, ttl_seconds=ttl_seconds)

    def sign(
        self,
        *,
        principal: Principal,
        tenant: str | None,
        roles: Sequence[str],
        audience: str,
        now: float,
    ) -> str:
        """A JWT for one upstream (``aud``) about one principal in one tenant."""
        key = (
            principal.user_id,
            principal.email,
            tenant,
            tuple(roles),
            audience,
            principal.auth_method.value,
        )
        cached = self._cache.get(key)
        if cached is not None and cached[1] - now > self.ttl / 2:
            return cached[0]
        issued = int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal.user_id,
            "email": principal.email,
            "tenant": tenant,
            "roles": list(roles),
            "auth_method": principal.auth_method.value,
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
        self._cache[key] = (token, issued + self.ttl)
        return token

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set upstreams verify assertions with."""
        return {"keys": [self._jwk]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public key."""
    import base64
    import hashlib

    members = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
