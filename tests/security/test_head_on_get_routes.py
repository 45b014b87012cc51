"""HEAD on a GET route: the same checks as GET, GET's headers, no body (was: 405).

Each HEAD is sent over a raw socket (so the body really is absent on the wire) to the
demo rules in front of a real Ledger, and compared with the GET of the same target:
status, the headers a client relies on, whether Ledger was reached, and the audit row,
which records the request as a HEAD with the action ``read`` (or the route's own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.rawhttp import RawResponse, raw_request
from tests.support.stack import Stack, running_stack

COMPARED = ("content-type", "content-length", "content-disposition", "cache-control")


async def send(stack: Stack, method: str, target: str, who: str | None) -> RawResponse:
    server = stack.client.server
    assert server.port is not None
    headers = {"Accept": "application/json"}
    if who is not None:
        headers |= stack.cookie(who)
    return await raw_request("127.0.0.1", server.port, method, target, headers)


async def audited(stack: Stack, response: RawResponse) -> dict[str, Any]:
    rows = await stack.audit_rows(response.headers["x-request-id"])
    rows = [r for r in rows if r["kind"] == "request"]
    assert len(rows) == 1, rows
    row = rows[0]
    row["data"] = json.loads(row["data"])
    return row


# (who, target, status, reason in the audit row, action, reaches Ledger)
CASES = [
    ("alice@acme.test", "/api/invoices/1", 200, "role-allowed", "read", True),
    ("alice@acme.test", "/api/invoices/2", 404, "tenant-foreign", "read", False),
    ("alice@acme.test", "/api/invoices/999", 404, "object-not-found", "read", False),
    (None, "/api/invoices/1", 401, "auth-required", "read", False),
    ("bob@globex.test", "/api/invoices/2", 200, "role-allowed", "read", True),
    ("alice@acme.test", "/files/1", 200, "role-allowed", "download", True),
    ("rita@acme.test", "/files/1", 403, "role-forbidden", "download", False),
    ("alice@acme.test", "/files/2", 404, "tenant-foreign", "download", False),
    ("alice@acme.test", "/api/invoices", 200, "role-allowed", "read", True),
    ("alice@acme.test", "/api/reports/recent", 200, "role-allowed", "read", True),
    ("alice@acme.test", "/api/reports/r-globex-1", 404, "tenant-foreign", "read", False),
    ("alice@acme.test", "/static/site.css", 200, "public-route", "read", True),
]


@pytest.mark.parametrize(
    ("who", "target", "status", "reason", "action", "reaches"),
    CASES,
    ids=[f"{c[0] or 'anonymous'} HEAD {c[1]} is {c[2]}" for c in CASES],
)
async def test_head_gets_the_same_answer_as_get_without_a_body(
    tmp_path: Path,
    who: str | None,
    target: str,
    status: int,
    reason: str,
    action: str,
    reaches: bool,
) -> None:
    async with running_stack(tmp_path) as stack:
        get = await send(stack, "GET", target, who)
        head = await send(stack, "HEAD", target, who)
        row = await audited(stack, head)
        hits = await stack.ledger_hits()
    assert get.status == status, get.body
    assert head.status == status
    assert head.body == b""
    for name in COMPARED:
        assert head.headers.get(name) == get.headers.get(name), name
    assert hits.get(head.headers["x-request-id"], 0) == (1 if reaches else 0)
    assert row["method"] == "HEAD"
    assert row["reason"] == reason
    assert row["decision"] == ("allow" if status == 200 else "deny")
    assert row["data"]["action"] == action


async def test_head_on_a_route_without_get_is_still_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        head = await send(stack, "HEAD", "/api/invoices/export", "admin@example.test")
        row = await audited(stack, head)
        assert await stack.ledger_total() == 0
    assert head.status == 405
    assert row["reason"] == "method-not-allowed"
