"""A request refused at ingress is audited with the caller who sent it, when known.

Rejected rows used to say ``anonymous`` even when a valid session came with the
request, which hides who is probing the gateway with ambiguous targets. The caller
is now resolved for the audit row only: it never changes the answer, not even when
the lookup itself fails.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.app import ENGINE
from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.rawhttp import RawResponse, raw_request
from tests.support.stack import Stack, running_stack

# Targets ingress refuses (400) and a gateway page asked for by a second spelling.
REFUSED = ["/api/echo/%2e%2e/x", "/api/echo/a%2Fb", "/a//b", "/%2Egatehold/login"]


async def send(stack: Stack, target: str, headers: dict[str, str]) -> RawResponse:
    server = stack.client.server
    assert server.port is not None
    headers = {"Accept": "application/json", **headers}
    return await raw_request("127.0.0.1", server.port, "GET", target, headers)


async def rejected_row(stack: Stack, response: RawResponse) -> dict[str, Any]:
    rows = await stack.audit_rows(response.headers["x-request-id"])
    assert [r["kind"] for r in rows] == ["rejected"], rows
    row = rows[0]
    row["data"] = json.loads(row["data"])
    return row


@pytest.mark.parametrize("target", REFUSED)
async def test_a_signed_in_caller_is_named_in_the_rejected_row(tmp_path: Path, target: str) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        response = await send(stack, target, stack.cookie("alice@acme.test"))
        row = await rejected_row(stack, response)
        assert await stack.ledger_total() == 0
    assert response.status == 400
    assert response.json()["type"] == "/.gatehold/problems/target-ambiguous"
    assert row["actor"] == "alice@acme.test"
    assert row["reason"] == "target-ambiguous"


async def test_without_a_valid_credential_the_row_says_anonymous_and_why(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        nobody = await send(stack, REFUSED[0], {})
        ended = await send(stack, REFUSED[0], {"Cookie": "__Host-gatehold=not-a-session"})
        forged = await send(stack, REFUSED[0], {"Authorization": "Bearer ghk_forged"})
        rows = [await rejected_row(stack, r) for r in (nobody, ended, forged)]
        assert await stack.ledger_total() == 0
    assert [r.status for r in (nobody, ended, forged)] == [400, 400, 400]
    assert [r["actor"] for r in rows] == ["anonymous"] * 3
    assert [r["data"].get("identity") for r in rows] == [
        None,
        "session-invalid",
        "credential-invalid",
    ]


async def test_a_failing_identity_lookup_does_not_change_the_answer(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        async with stack.app[ENGINE].begin() as conn:  # the session store breaks for real
            await conn.execute(text("ALTER TABLE sessions RENAME TO sessions_gone"))
        token = secrets.token_urlsafe(32)  # well formed and not cached: read from the store
        response = await send(stack, REFUSED[0], {"Cookie": f"__Host-gatehold={token}"})
        row = await rejected_row(stack, response)
        assert await stack.ledger_total() == 0
    assert response.status == 400
    assert response.json()["type"] == "/.gatehold/problems/target-ambiguous"
    assert row["actor"] == "anonymous"
    assert row["data"]["identity"] == "store-unavailable"  # the lookup failed, and says why
