"""API clients: gateway API keys and bearer JWTs from a partner's issuer (with key rotation)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import ENGINE
from gateway.store import api_keys
from tests.support.stack import Stack, running_stack
from tests.support.waiting import until

API = {"Accept": "application/json"}
ISSUER = "https://idp.partner.example"


async def get(stack: Stack, path: str, credential: str) -> tuple[int, str]:
    response = await stack.client.get(path, headers={"Authorization": f"Bearer {credential}"} | API)
    await response.read()
    return response.status, response.headers["X-Request-Id"]


async def test_an_api_key_acts_in_its_one_tenant_and_role_until_revoked(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        key_id, key = await api_keys.create_key(
            engine, tenant="acme", role="readonly", label="erp-sync", ttl=3600, now=time.time()
        )
        status, request_id = await get(stack, "/api/invoices/7", key)
        assert status == 200
        rows = await stack.audit_rows(request_id)
        assert rows[0]["actor"] == "apikey:erp-sync"
        assert json.loads(rows[0]["data"])["auth_method"] == "api-key"
        assert (await get(stack, "/api/invoices/8", key))[0] == 404, "globex is foreign"
        update = await stack.client.put(
            "/api/invoices/7",
            json={"status": "paid"},
            headers={"Authorization": f"Bearer {key}"} | API,
        )
        assert update.status == 403, "readonly may not write"
        await api_keys.revoke_key(engine, key_id, time.time())
        await stack.revocations_noticed(api_keys=[key])
        assert (await get(stack, "/api/invoices/7", key))[0] == 401


async def test_expired_and_made_up_api_keys_are_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _, expired = await api_keys.create_key(
            stack.app[ENGINE],
            tenant="acme",
            role="readonly",
            label="old",
            ttl=1,
            now=time.time() - 10,
        )
        assert (await get(stack, "/api/invoices/7", expired))[0] == 401
        assert (await get(stack, "/api/invoices/7", "ghk_made-up"))[0] == 401


class Issuer:
    """A partner's identity provider: a JWKS endpoint whose keys can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        self.rotate()

    def rotate(self) -> str:
        kid = f"k{len(self.keys) + 1}"
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return kid

    def retire(self, kid: str) -> None:
        del self.keys[kid]

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": "gatehold",
            "sub": "partner-erp",
            "iat": now,
            "exp": now + 300,
            "tenant": "globex",
            "role": "standard",
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="ES256", headers={"kid": kid})

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        keys = [
            {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256"}
            for kid, key in self.keys.items()
        ]
        return web.json_response({"keys": keys})


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    idp = Issuer()
    app = web.Application()
    app.router.add_get("/jwks", idp.jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield idp, f"http://127.0.0.1:{runner.addresses[0][1]}/jwks"
    await runner.cleanup()


async def test_bearer_jwts_are_verified_and_follow_key_rotation(
    tmp_path: Path, issuer: tuple[Issuer, str]
) -> None:
    idp, jwks_url = issuer
    bearer = {
        "issuer": ISSUER,
        "jwks_url": jwks_url,
        "audience": "gatehold",
        "algorithms": ["ES256"],
        "jwks_refetch_after": 0,  # no back-off between refetches in a test
    }
    async with running_stack(tmp_path, auth={"bearer": bearer}) as stack:
        first = idp.token("k1")
        status, request_id = await get(stack, "/api/invoices/8", first)
        assert status == 200
        assert (
            json.loads((await stack.audit_rows(request_id))[0]["data"])["auth_method"]
            == "bearer-jwt"
        )
        assert (await get(stack, "/api/invoices/7", first))[0] == 404, "acme is foreign"

        new_kid = idp.rotate()  # the issuer rotates mid-run
        idp.retire("k1")
        assert (await get(stack, "/api/invoices/8", idp.token(new_kid)))[0] == 200
        assert (await get(stack, "/api/invoices/8", first))[0] == 401, "retired key"

        wrong_audience = idp.token(new_kid, aud="another-gateway")
        expired = idp.token(new_kid, exp=int(time.time()) - 120, iat=int(time.time()) - 400)
        wrong_issuer = idp.token(new_kid, iss="https://evil.example")
        unsigned = jwt.encode(
            {
                "iss": ISSUER,
                "aud": "gatehold",
                "sub": "x",
                "tenant": "globex",
                "role": "standard",
                "iat": 1,
                "exp": 2**31,
            },
            key=None,
            algorithm="none",
            headers={"kid": new_kid},
        )
        for token in (wrong_audience, expired, wrong_issuer, unsigned, "not-a-jwt"):
            assert (await get(stack, "/api/invoices/8", token))[0] == 401
        assert idp.fetches >= 2, "the JWKS was fetched again after the rotation"


async def used_at(engine: AsyncEngine, key_id: int) -> bool:
    """Whether a use of the key is written down."""
    row = await api_keys.get_key(engine, key_id)
    return row is not None and row.last_used_at is not None


async def test_a_keyed_request_records_when_the_key_was_last_used(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        key_id, key = await api_keys.create_key(
            engine, tenant="acme", role="readonly", label="erp-sync", ttl=3600, now=time.time()
        )
        fresh = await api_keys.get_key(engine, key_id)
        assert fresh is not None and fresh.last_used_at is None
        before = time.time()
        assert (await get(stack, "/api/invoices/7", key))[0] == 200
        await until(lambda: used_at(engine, key_id), "the revocation poll writes noted uses")
        first = await api_keys.get_key(engine, key_id)
        assert first is not None and first.last_used_at is not None
        assert before <= first.last_used_at <= time.time()
        for _ in range(5):  # within the minute, further uses are not written again
            assert (await get(stack, "/api/invoices/7", key))[0] == 200
        await asyncio.sleep(1.2)  # two polls (0.5 s) that must write nothing
        again = await api_keys.get_key(engine, key_id)
        assert again is not None and again.last_used_at == first.last_used_at
        refused = await api_keys.create_key(
            engine, tenant="acme", role="readonly", label="other", ttl=3600, now=time.time()
        )
        assert (await get(stack, "/api/invoices/8", refused[1]))[0] == 404
        await until(lambda: used_at(engine, refused[0]), "a refused request's use is written")
        listed = {row.id: row for row in await api_keys.list_keys(engine)}
        assert listed[key_id].last_used_at == first.last_used_at
        assert listed[refused[0]].last_used_at is not None, "a refused request still used it"
