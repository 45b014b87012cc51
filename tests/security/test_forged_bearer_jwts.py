"""Forged, expired and unsigned bearer JWTs (SPEC §4 API clients; I4b fail closed).

A partner's system calls with a JWT from the configured issuer. Each case here is a
token an attacker can make without the issuer's private key, or an honest token used
outside its terms: ``alg: none`` (with and without the old signature), an HMAC
signature keyed with the issuer's public key (algorithm confusion), a token signed by
the attacker's own key under the issuer's ``kid``, one pointing ``jku``/``jwk`` at
the attacker's key, a tampered payload, and expired, not-yet-valid, wrong-issuer and
wrong-audience tokens. Each is answered 401 as problem+json, reaches nothing upstream
(Ledger counts hits by request id) and leaves a denied audit record (and its
401 outcome) for its request id. One gateway serves the whole table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.integration.test_api_clients import ISSUER, Issuer
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
TARGET = "/api/invoices/8"  # globex's invoice; the honest token is a globex standard


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": "gatehold",
        "sub": "partner-erp",
        "iat": now,
        "exp": now + 300,
        "tenant": "globex",
        "role": "standard",
        **extra,
    }


def _unsigned(idp: Issuer, keep_signature: bool = False) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = _segments(idp.token("k1"))[2] if keep_signature else ""
    return f"{header}.{body}.{signature}"


def _none_spelling(spelling: str) -> Callable[[Issuer], str]:
    def make(idp: Issuer) -> str:
        header = _b64(json.dumps({"alg": spelling, "kid": "k1"}).encode())
        return f"{header}.{_b64(json.dumps(_claims()).encode())}."

    return make


def _hmac_with_public_key(idp: Issuer) -> str:
    public = ECAlgorithm.to_jwk(idp.keys["k1"].public_key()).encode()
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


ATTACKER_KEY = ec.generate_private_key(ec.SECP256R1())


def _attackers_key(**headers: Any) -> Callable[[Issuer], str]:
    def make(idp: Issuer) -> str:
        return jwt.encode(_claims(), ATTACKER_KEY, algorithm="ES256", headers=headers)

    return make


def _tampered(idp: Issuer) -> str:
    header, _, signature = _segments(idp.token("k1"))
    body = _b64(json.dumps(_claims(role="admin", tenant="acme")).encode())
    return f"{header}.{body}.{signature}"


def _honest(**claims: Any) -> Callable[[Issuer], str]:
    def make(idp: Issuer) -> str:
        return idp.token("k1", **claims)

    return make


NOW = int(time.time())
ATTACKER_JWK = {**json.loads(ECAlgorithm.to_jwk(ATTACKER_KEY.public_key())), "kid": "k1"}
FORGED: dict[str, Callable[[Issuer], str]] = {
    "alg none, no signature": _unsigned,
    "alg none, the honest signature kept": lambda idp: _unsigned(idp, keep_signature=True),
    "alg None": _none_spelling("None"),
    "alg NONE": _none_spelling("NONE"),
    "alg nOnE": _none_spelling("nOnE"),
    "HS256 keyed with the issuer's public key": _hmac_with_public_key,
    "the attacker's key under the issuer's kid": _attackers_key(kid="k1"),
    "the attacker's key without a kid": _attackers_key(),
    "the attacker's key under an unknown kid": _attackers_key(kid="k9"),
    "jku pointing at the attacker's JWKS": _attackers_key(
        kid="k1", jku="https://evil.example/jwks"
    ),
    "the attacker's key embedded as jwk": _attackers_key(kid="k1", jwk=ATTACKER_JWK),
    "payload tampered to admin of acme": _tampered,
    "signature cut off": lambda idp: idp.token("k1").rsplit(".", 1)[0] + ".",
    "two segments": lambda idp: idp.token("k1").rsplit(".", 1)[0],
    "expired two minutes ago": _honest(exp=NOW - 120, iat=NOW - 400),
    "not valid for an hour yet": _honest(nbf=NOW + 3600),
    "another issuer": _honest(iss="https://evil.example"),
    "another audience": _honest(aud="another-gateway"),
    "no expiry": _honest(exp=None),
    "not a JWT at all": lambda idp: "not-a-jwt",
}


class Table:
    def __init__(self, stack: Stack, idp: Issuer) -> None:
        self.stack, self.idp = stack, idp


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def table(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Table]:
    idp = Issuer()
    app = web.Application()
    app.router.add_get("/jwks", idp.jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    bearer = {
        "issuer": ISSUER,
        "jwks_url": f"http://127.0.0.1:{runner.addresses[0][1]}/jwks",
        "audience": "gatehold",
        "algorithms": ["ES256"],
        "jwks_refetch_after": 0,
    }
    data: Path = tmp_path_factory.mktemp("jwt")
    try:
        async with running_stack(data, auth={"bearer": bearer}) as stack:
            yield Table(stack, idp)
    finally:
        await runner.cleanup()


async def call(stack: Stack, token: str) -> tuple[int, dict[str, Any], str]:
    answer = await stack.client.get(TARGET, headers={"Authorization": f"Bearer {token}"})
    body = await answer.json(content_type=None)
    return answer.status, body, answer.headers["X-Request-Id"]


async def test_the_honest_token_passes(table: Table) -> None:
    status, _, request_id = await call(table.stack, table.idp.token("k1"))
    assert status == 200
    assert (await table.stack.ledger_hits()).get(request_id) == 1


@pytest.mark.parametrize("name", sorted(FORGED))
async def test_a_forged_token_is_refused_unforwarded_and_audited(table: Table, name: str) -> None:
    stack = table.stack
    token = FORGED[name](table.idp)
    status, problem, request_id = await call(stack, token)
    assert status == 401, (name, status, problem)
    assert problem["type"].startswith("/.gatehold/problems/"), problem
    assert request_id not in await stack.ledger_hits(), "it reached Ledger"
    rows = await stack.audit_rows(request_id)
    decided = [(r["kind"], r["decision"], r["reason"]) for r in rows if r["kind"] == "request"]
    assert decided == [("request", "deny", "credential-invalid")], rows
    outcome = [json.loads(r["data"]) for r in rows if r["kind"] == "outcome"]
    assert [o["status"] for o in outcome] == [401], outcome
    assert token not in json.dumps(problem) and token not in str(rows), "token echoed"
