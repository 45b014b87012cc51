"""A software WebAuthn authenticator for tests: one EC P-256 key, attestation "none".

It answers the gateway's options as a browser would hand them back (the JSON form of a
``PublicKeyCredential``), and lets a test forge exactly one field at a time: the origin
in clientDataJSON, the RP id whose hash is in authenticatorData, the flags, the counter,
the credential id, the user handle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential for ``rp_id``, used from ``origin``."""

    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    counter: int = 0
    """Signature counter; each assertion adds one first, unless it stays at 0."""
    counts: bool = True
    """Whether this authenticator keeps a counter (many passkeys report 0 always)."""
    user_handle: bytes | None = None
    """Set by ``register`` from the options, as an authenticator keeps it."""

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return bytes(
            cbor2.dumps(
                {
                    1: 2,  # kty: EC2
                    3: -7,  # alg: ES256
                    -1: 1,  # crv: P-256
                    -2: numbers.x.to_bytes(32, "big"),
                    -3: numbers.y.to_bytes(32, "big"),
                }
            )
        )

    def register(
        self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """The answer to ``navigator.credentials.create`` with these options."""
        self.user_handle = from_b64url(options["user"]["id"])
        client = self._client_data("webauthn.create", options["challenge"], origin)
        attested = (
            bytes(16)  # aaguid
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_key()
        )
        auth_data = self._auth_data(rp_id, UP | UV | AT, self.counter) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def sign_in(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        counter: int | None = None,
        verified: bool = True,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """The answer to ``navigator.credentials.get``; each keyword forges one field."""
        if counter is None:
            if self.counts:
                self.counter += 1
            counter = self.counter
        client = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._auth_data(rp_id, UP | (UV if verified else 0), counter)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        raw = credential_id or self.credential_id
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(raw),
            "rawId": b64url(raw),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        return json.dumps({**data, "crossOrigin": False}).encode()

    def _auth_data(self, rp_id: str | None, flags: int, counter: int) -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", counter)
