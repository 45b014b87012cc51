"""WebSocket upgrades to routes the caller may not open (I1, I3, I4b).

A socket is judged like any request before the app is dialled: a foreign tenant's
feed, a route that is no socket route, a method other than GET, an ambiguous target,
no route at all, a missing, made-up or doubled session, and a page of another origin
are each refused with the usual answer, no ``101``, nothing at Ledger (no socket to it
either), and a denial in the audit log. One gateway serves the whole table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.rawhttp import raw_request
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, BOB = "alice@acme.test", "bob@globex.test"
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Origin": "http://gatehold.test",
    "Accept": "application/json",
}
# name: (method, target, credential: "alice" | "none" | "forged" | "both", extra, status, type)
CASES: dict[str, tuple[str, str, str, dict[str, str], int, str]] = {
    "another tenant's feed": ("GET", "/ws/globex/feed", "alice", {}, 404, "object-not-found"),
    "no session": ("GET", "/ws/acme/feed", "none", {}, 401, "auth-required"),
    "a made-up session": ("GET", "/ws/acme/feed", "forged", {}, 401, "session-invalid"),
    "two session cookies": ("GET", "/ws/acme/feed", "both", {}, 400, "header-invalid"),
    "a page of another origin": (
        "GET",
        "/ws/acme/feed",
        "alice",
        {"Origin": "https://evil.example"},
        403,
        "origin-forbidden",
    ),
    "a route that is no socket route": ("GET", "/api/invoices/7", "alice", {}, 405, ""),
    "a foreign object's route": ("GET", "/api/invoices/8", "alice", {}, 405, ""),
    "POST to the feed": ("POST", "/ws/acme/feed", "alice", {}, 405, "method-not-allowed"),
    "dot segments to another feed": (
        "GET",
        "/ws/acme/%2e%2e/globex/feed",
        "alice",
        {},
        400,
        "target-ambiguous",
    ),
    "an encoded slash in the tenant": (
        "GET",
        "/ws/acme%2Fglobex/feed",
        "alice",
        {},
        400,
        "target-ambiguous",
    ),
    "no route at all": ("GET", "/ws/acme/feed/admin", "alice", {}, 404, "route-not-found"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("sockets")
    async with running_stack(data) as running:
        yield running


def credential(stack: Stack, kind: str) -> dict[str, str]:
    alice, bob = stack.cookies[ALICE], stack.cookies[BOB]
    return {
        "alice": {"Cookie": f"__Host-gatehold={alice}"},
        "none": {},
        "forged": {"Cookie": "__Host-gatehold=" + "A" * 43},
        "both": {"Cookie": f"__Host-gatehold={alice}; __Host-gatehold={bob}"},
    }[kind]


@pytest.mark.parametrize("name", list(CASES))
async def test_a_forbidden_upgrade_is_refused_before_the_app_is_dialled(
    stack: Stack, name: str
) -> None:
    method, target, who, extra, status, reason = CASES[name]
    server = stack.client.server
    before = await stack.ledger_total()
    headers = {**HANDSHAKE, **credential(stack, who), **extra}
    answer = await raw_request(str(server.host), int(server.port or 0), method, target, headers)
    assert answer.status == status, (name, answer.status, answer.body[:200])
    problem = answer.json()
    if reason:
        assert problem["type"] == f"/.gatehold/problems/{reason}", (name, problem)
    assert "upgrade" not in answer.headers
    assert await stack.ledger_total() == before, f"{name}: Ledger was reached"
    rows = await stack.audit_rows(problem["request_id"])
    # Refused at the decision (a denied record), or, for a socket the rules allow but
    # its Origin does not, when the handshake is checked (the outcome names why).
    refused = [
        r
        for r in rows
        if r["decision"] == "deny"
        or r["kind"] == "rejected"
        or (r["kind"] == "outcome" and reason and r["reason"] == reason)
    ]
    assert refused, (name, rows)
    outcomes = [json.loads(r["data"]).get("status") for r in rows if r["kind"] == "outcome"]
    assert set(outcomes) <= {status}, (name, outcomes)
