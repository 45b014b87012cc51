"""A second Authorization header would reach the app unchecked.

Identity reads one Authorization header. With two — ``Basic …`` for the app, then a
forged ``Bearer …`` — the gateway judged the caller by their session cookie while the
app behind received the bearer token nobody had verified. A request with more than one
Authorization header is now refused at ingress, audited, and never forwarded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from multidict import CIMultiDict

from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.stack import running_stack

PAIRS = {
    "basic then forged bearer": ("Basic YWxpY2U6cHc=", "Bearer ghk_forged"),
    "forged bearer then basic": ("Bearer ghk_forged", "Basic YWxpY2U6cHc="),
    "two basics": ("Basic YWxpY2U6cHc=", "Basic Ym9iOnB3"),
}


@pytest.mark.parametrize(("first", "second"), PAIRS.values(), ids=PAIRS.keys())
async def test_two_authorization_headers_are_refused_unforwarded(
    tmp_path: Path, first: str, second: str
) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        headers = CIMultiDict(stack.cookie("alice@acme.test"))
        headers.add("Accept", "application/json")
        headers.add("Authorization", first)
        headers.add("Authorization", second)
        response = await stack.client.get("/api/echo/x", headers=headers)
        body = await response.json()
        rows = await stack.audit_rows(response.headers["X-Request-Id"])
        assert await stack.ledger_total() == 0, "nothing reached the app"
    assert response.status == 400
    assert body["type"] == "/.gatehold/problems/header-invalid"
    assert [r["kind"] for r in rows] == ["rejected"]
    assert rows[0]["reason"] == "header-invalid"
    # The row names the caller the first header and the cookie make (a forged bearer: none).
    assert rows[0]["actor"] == ("anonymous" if first.startswith("Bearer") else "alice@acme.test")


async def test_one_authorization_header_for_the_app_still_passes(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        headers = stack.cookie("alice@acme.test") | {"Authorization": "Basic YWxpY2U6cHc="}
        response = await stack.client.get("/api/echo/x", headers=headers)
        assert response.status == 200, await response.text()
        echoed = json.loads(await response.text())
    assert echoed["headers"].get("Authorization") == "Basic YWxpY2U6cHc="
