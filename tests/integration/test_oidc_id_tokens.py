"""Forged and broken ID tokens, served by a hostile provider, never sign anyone in.

A real OpenID Provider will not mint a token signed with the wrong key or ``alg: none``;
this provider does exactly that, on purpose. It speaks the protocol for real over
loopback (discovery, JWKS, token endpoint with PKCE), and checks the gateway's PKCE
verifier against the challenge it was sent, so the one honest case shows the exchange
works and each forgery fails only because of what was forged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.stack import Stack, running_stack

FLOW = "__Host-gatehold-oidc"
CLIENT = "gatehold"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class HostileProvider:
    issuer: str = ""
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    stranger: rsa.RSAPrivateKey = field(default_factory=new_key)
    mode: str = "honest"
    nonce: str = ""
    challenge: str = ""
    verifiers_seen: list[bool] = field(default_factory=list)

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "mallory",
            "aud": CLIENT,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": self.nonce,
            "email": "mallory@acme.test",
            "email_verified": True,
            "groups": ["acme-staff"],
        }
        if self.mode == "wrong-issuer":
            claims["iss"] = "https://idp.evil.example"
        if self.mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        if self.mode == "wrong-audience":
            claims["aud"] = "someone-else"
        if self.mode == "nonce-missing":
            del claims["nonce"]
        return claims

    def id_token(self) -> str:
        claims = self.claims()
        if self.mode == "alg-none":
            return jwt.encode(claims, None, algorithm="none")
        signer = self.stranger if self.mode == "wrong-key" else self.key
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "k1"})

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/auth",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "authorization_response_iss_parameter_supported": True,
                }
            )

        async def jwks(request: web.Request) -> web.Response:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return web.json_response({"keys": [{**public, "kid": "k1", "alg": "RS256"}]})

        async def token(request: web.Request) -> web.Response:
            form = await request.post()
            digest = hashlib.sha256(str(form["code_verifier"]).encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            self.verifiers_seen.append(expected == self.challenge)
            if expected != self.challenge:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response({"access_token": "at", "id_token": self.id_token()})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        app.router.add_post("/token", token)
        return app


@asynccontextmanager
async def hostile_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, HostileProvider]]:
    provider = HostileProvider()
    runner = web.AppRunner(provider.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    provider.issuer = f"http://127.0.0.1:{runner.addresses[0][1]}"
    settings = {
        "name": "corp",
        "issuer": provider.issuer,
        "client_id": CLIENT,
        "client_secret": "s3cret-for-tests",
        "provisioning": "jit",
        "group_grants": {"acme-staff": [{"tenant": "acme", "role": "standard"}]},
        "leeway": "5s",
    }
    try:
        async with running_stack(tmp_path, auth={"oidc": [settings]}) as stack:
            yield stack, provider
    finally:
        await runner.cleanup()


async def sign_in(stack: Stack, provider: HostileProvider) -> tuple[int, str, bool]:
    start = await stack.client.get(
        "/.gatehold/oidc/corp/start", params={"rd": "/api/invoices/7"}, allow_redirects=False
    )
    query = dict(parse_qsl(urlsplit(start.headers["Location"]).query))
    provider.nonce, provider.challenge = query["nonce"], query["code_challenge"]
    callback = await stack.client.get(
        "/.gatehold/oidc/corp/callback",
        params={"code": "code-1", "state": query["state"], "iss": provider.issuer},
        headers={"Cookie": f"{FLOW}={start.cookies[FLOW].value}"},
        allow_redirects=False,
    )
    return callback.status, await callback.text(), "__Host-gatehold" in callback.cookies


async def test_an_honest_token_signs_in_with_pkce_checked_by_the_provider(tmp_path: Path) -> None:
    async with hostile_stack(tmp_path) as (stack, provider):
        status, _, session = await sign_in(stack, provider)
        assert status == 303 and session
        assert provider.verifiers_seen == [True]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong-issuer", "token-issuer"),
        ("alg-none", "token-algorithm"),
        ("wrong-key", "token-signature"),
        ("expired", "token-expired"),
        ("wrong-audience", "token-audience"),
        ("nonce-missing", "nonce-mismatch"),
    ],
)
async def test_a_forged_or_broken_id_token_is_refused(
    tmp_path: Path, mode: str, reason: str
) -> None:
    async with hostile_stack(tmp_path) as (stack, provider):
        provider.mode = mode
        status, body, session = await sign_in(stack, provider)
        assert status == 400 and not session
        assert "Sign-in did not work" in body and reason in body
        assert "Traceback" not in body
        failed = await stack.events("login-failed")
        assert [(f["method"], f["reason"], f["data"]["provider"]) for f in failed] == [
            ("oidc", reason, "corp")
        ]
        assert await stack.events("login") == []
