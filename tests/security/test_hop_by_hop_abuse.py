"""Hop-by-hop abuse (I4): a client names the gateway's own headers in ``Connection``.

A proxy drops the headers ``Connection`` names before forwarding. Were the gateway
to apply the client's list after setting its own headers, a client could strip the
identity, tenant, assertion or request id the app relies on (and the app might fall
back to a default identity), or smuggle a hop-by-hop header through. Each case sends
one such ``Connection`` list (and the header it names, where a client could send it)
through a real gateway to an app that echoes what it received: the app must see the
gateway's own identity headers, a valid assertion, the request id the audit record
carries, and none of the hop-by-hop headers. One gateway serves the whole table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = "alice@acme.test"
HOP_BY_HOP = (
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
)
NAMED = (
    "X-Gatehold-Email",
    "X-Gatehold-User",
    "X-Gatehold-Tenant",
    "X-Gatehold-Roles",
    "X-Gatehold-Assertion",
    "X-Request-Id",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "Host",
    "Content-Length",
    "X_Gatehold_Email",
    "x-gatehold-email",
    "X-Gatehold-Email, X-Gatehold-Assertion, X-Request-Id",
)
EXTRA = {
    "Keep-Alive": "timeout=5, max=1000",
    "Proxy-Connection": "keep-alive",
    "TE": "trailers",
    "Trailer": "X-Gatehold-Email",
    "Upgrade": "h2c",
    "Proxy-Authorization": "Basic YWRtaW46YWRtaW4=",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("hop")
    async with running_stack(data, rules_text=PLUMBING_RULES) as running:
        yield running


async def echoed(stack: Stack, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    answer = await stack.client.get(
        "/api/echo/who", headers={**stack.cookie(ALICE), "Accept": "application/json", **headers}
    )
    seen = {k.lower(): v for k, v in (await answer.json())["headers"].items()}
    return answer.status, seen, answer.headers["X-Request-Id"]


@pytest.mark.parametrize("named", NAMED)
async def test_a_connection_list_cannot_strip_the_gateways_headers(
    stack: Stack, named: str
) -> None:
    spoof = {} if named in ("Host", "Content-Length") or "," in named else {named: "forged"}
    status, seen, request_id = await echoed(stack, {"Connection": f"keep-alive, {named}", **spoof})
    assert status == 200
    assert seen["x-gatehold-email"] == ALICE
    assert seen["x-gatehold-tenant"] == "acme"
    assert seen["x-gatehold-roles"] == "standard"
    assert seen["x-gatehold-assertion"].count(".") == 2
    assert seen["x-request-id"] == request_id, "the app's request id is the audited one"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "forged" not in seen.values()
    assert not set(HOP_BY_HOP) & seen.keys() - {"connection"}
    assert seen.get("connection", "keep-alive").lower() in ("keep-alive", "close")
    rows = await stack.audit_rows(request_id)
    assert [(r["kind"], r["decision"]) for r in rows][:1] == [("request", "allow")]


@pytest.mark.parametrize("name", sorted(EXTRA))
async def test_a_hop_by_hop_header_never_reaches_the_app(stack: Stack, name: str) -> None:
    status, seen, _ = await echoed(stack, {name: EXTRA[name], "Connection": "keep-alive"})
    assert status == 200
    assert name.lower() not in seen, f"{name} was forwarded"
    assert seen["x-gatehold-email"] == ALICE
