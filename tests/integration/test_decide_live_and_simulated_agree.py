"""``rules simulate`` and live traffic reach the same decision, for every kind of request.

A seeded generator draws a few hundred requests over the demo rules: every demo user
and nobody signed in, every method, every route with ids of both tenants, missing ids,
ids in the query and in bodies, method overrides, unreadable bodies, WebSocket
upgrades, ambiguous targets. Each one is first explained (``admin.explain``, what
``gatehold rules simulate`` runs) and then sent byte for byte to the running gateway in
front of a real Ledger; the request's committed audit row must carry the same decision
and reason. Simulation goes first and shares the live gateway's state (owner cache,
enumeration counts), so both see the world as it is at that moment.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from gateway.admin.explain import explain, principal_for
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.demo.run import DEMO_USERS
from gateway.model import ANONYMOUS, Anonymous, Principal, Reason
from tests.support.stack import Stack, running_stack

SEED = 20261128
COUNT = 400
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
INVOICES = [*range(1, 13), 0, 99]  # odd: acme, even: globex; 0 and 99 do not exist
DOCUMENTS = [1, 2, 3, 4, 99]
REPORTS = ["r-acme-1", "r-globex-1", "r-nobody-9", "R_bad!"]
TENANTS = ["acme", "globex", "initech"]
METHODS = ["GET"] * 5 + ["POST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
BAD_TARGETS = [
    "/api/invoices/%2e%2e/1",
    "/api/../files/1",
    "//api/invoices",
    "/api/invoices/1%2f2",
    "/api/invoices/abc",
    "/api/invoices/1;x=2",
    "/api/search?invoice=1&invoice=2",
    "/api/search?Invoice=2",
    "/api/search?invoice=%31",
    "/.gatehold/../api/invoices",
    "/api/invoices/%00",
    "/static/../api/invoices/2",
]


@dataclass(frozen=True)
class Case:
    who: str | None
    """A demo user's email, or ``None`` for a request without a credential."""
    method: str
    target: str
    body: bytes = b""
    content_type: str = JSON
    websocket: bool = False

    def describe(self) -> str:
        upgrade = " (websocket)" if self.websocket else ""
        return f"{self.who or 'anonymous'}: {self.method} {self.target}{upgrade} {self.body!r}"


def targets(rng: random.Random) -> str:
    invoice = rng.choice(INVOICES)
    choices = [
        "/api/invoices",
        f"/api/invoices/{invoice}",
        "/api/invoices/export",
        f"/api/search?invoice={invoice}",
        "/api/search",
        f"/files/{rng.choice(DOCUMENTS)}",
        "/api/reports/recent",
        "/api/reports",
        f"/api/reports/{rng.choice(REPORTS)}",
        f"/t/{rng.choice(TENANTS)}/settings",
        f"/ws/{rng.choice(TENANTS)}/feed",
        "/static/app.css",
        "/nowhere",
        rng.choice(BAD_TARGETS),
    ]
    return rng.choice(choices)


def bodies(rng: random.Random, method: str) -> tuple[bytes, str]:
    if method not in ("POST", "PUT", "PATCH") or rng.random() < 0.3:
        return b"", JSON
    invoice = rng.choice(INVOICES)
    return rng.choice(
        [
            (json.dumps({"related_invoice": invoice}).encode(), JSON),
            (json.dumps({"amount": 5}).encode(), JSON),
            (b"{not json", JSON),
            (f"_method={rng.choice(['DELETE', 'PUT', 'GET'])}".encode(), FORM),
            (b"_method=DELETE&_METHOD=PUT", FORM),
            (json.dumps({"_method": "PATCH", "related_invoice": invoice}).encode(), JSON),
            ("amount=4".encode("utf-16-le"), f"{FORM}; charset=utf-16-le"),
            (b"plain words", "text/plain"),
        ]
    )


def generated(count: int) -> list[Case]:
    rng = random.Random(SEED)
    people: list[str | None] = [p.email for p in DEMO_USERS] + [None]
    cases = []
    for _ in range(count):
        method = rng.choice(METHODS)
        body, content_type = bodies(rng, method)
        cases.append(
            Case(
                who=rng.choice(people),
                method=method,
                target=targets(rng),
                body=body,
                content_type=content_type,
                websocket=method == "GET" and rng.random() < 0.15,
            )
        )
    return cases


async def send(stack: Stack, case: Case, cookie: str | None) -> str:
    """Send ``case`` on a fresh connection, the target as given; returns its request id."""
    server = stack.client.server
    lines = [f"{case.method} {case.target} HTTP/1.1", f"Host: {server.host}:{server.port}"]
    if cookie is not None:
        lines.append(f"Cookie: __Host-gatehold={cookie}")
    if case.websocket:
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
        lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://gatehold.test"]
    else:
        lines.append("Connection: close")
    if case.body:
        lines += [f"Content-Type: {case.content_type}", f"Content-Length: {len(case.body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + case.body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()
    status, *headers = answer.decode("latin-1").split("\r\n")
    for line in headers:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-request-id":
            return value.strip()
    assert " 101 " in status, f"no X-Request-Id in the answer to {case.describe()}: {answer!r}"
    return await newest_request_id(stack)  # an upgrade answer carries no request id


async def newest_request_id(stack: Stack) -> str:
    """The request id of the last request audited (requests here go one at a time)."""
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        newest = await conn.execute(
            text("SELECT request_id FROM audit_log WHERE kind = 'request' ORDER BY seq DESC")
        )
        return str(newest.scalars().first())


async def decided_rows(stack: Stack, request_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``request id → (decision, reason)`` from each request's committed audit row."""
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT request_id, kind, decision, reason FROM audit_log "
                "WHERE kind IN ('request', 'rejected')"
            )
        )
        found = {row.request_id: (row.kind, row.decision, row.reason) for row in rows}
    decided = {}
    for request_id in request_ids:
        kind, decision, reason = found[request_id]
        decided[request_id] = ("deny" if kind == "rejected" else decision, reason)
    return decided


async def test_simulate_and_live_traffic_decide_alike(tmp_path: Path) -> None:
    enumeration = {"slow_after": 2, "block_after": 3}  # blocks come; slow-downs do not
    async with running_stack(tmp_path, policy={"enumeration": enumeration}) as stack:
        gw = stack.app[GATEWAY]
        principals: dict[str | None, Principal | Anonymous] = {None: ANONYMOUS}
        cookies: dict[str | None, str | None] = {None: None}
        for person in DEMO_USERS:
            principal = await principal_for(gw, person.email)
            assert principal is not None
            principals[person.email] = principal
            cookies[person.email] = await stack.mint(person.email, tenant=principal.active_tenant)
        cases = generated(COUNT)
        expected: dict[str, tuple[str, str]] = {}
        described: dict[str, str] = {}
        for case in cases:
            simulated = await explain(
                gw,
                principal=principals[case.who],
                method=case.method,
                target=case.target,
                body=case.body,
                content_type=case.content_type,
                headers={"Upgrade": "websocket"} if case.websocket else None,
            )
            request_id = await send(stack, case, cookies[case.who])
            allowed = "allow" if simulated.decision.allowed else "deny"
            expected[request_id] = (allowed, simulated.decision.reason.value)
            described[request_id] = case.describe()
        live = await decided_rows(stack, list(expected))
    differ = [
        f"{described[rid]}: simulated {expected[rid]}, live {live[rid]}"
        for rid in expected
        if expected[rid] != live[rid]
    ]
    assert not differ, "\n".join(differ)
    reasons = {reason for _, reason in expected.values()}
    # The generator reaches every kind of verdict the demo rules can give.
    assert {
        Reason.ROLE_ALLOWED,
        Reason.PUBLIC_ROUTE,
        Reason.AUTH_REQUIRED,
        Reason.ROLE_FORBIDDEN,
        Reason.TENANT_FOREIGN,
        Reason.OBJECT_NOT_FOUND,
        Reason.ROUTE_NOT_FOUND,
        Reason.METHOD_NOT_ALLOWED,
        Reason.TARGET_AMBIGUOUS,
        Reason.BODY_INVALID,
        Reason.BODY_UNSUPPORTED,
        Reason.ENUMERATION_BLOCKED,
    } <= reasons, sorted(reasons)
