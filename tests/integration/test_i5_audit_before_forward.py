"""I5: no request reaches the app before its audit record is durably committed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.metrics import STAGES
from tests.support.stack import Stack, running_stack


async def test_request_is_committed_to_the_audit_log_before_it_is_forwarded(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            "/api/invoices/7", headers=stack.cookie("alice@acme.test")
        )
        assert response.status == 200
        rows = await stack.audit_rows(response.headers["X-Request-Id"])
        request_row, outcome = rows[0], rows[-1]
        assert request_row["kind"] == "request"
        assert request_row["decision"] == "allow"
        assert request_row["actor"] == "alice@acme.test"
        assert request_row["tenant"] == "acme"
        assert request_row["route"] == "invoice-read"
        assert outcome["kind"] == "outcome"
        assert '"status":200' in outcome["data"].replace(" ", "")


async def test_an_audit_store_that_cannot_commit_answers_503_and_forwards_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        async with engine.begin() as conn:  # the audit table refuses every new row
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        response = await stack.client.get(
            "/api/invoices/7",
            headers=stack.cookie("alice@acme.test") | {"Accept": "application/json"},
        )
        assert response.status == 503
        body = await response.json()
        assert body["type"].endswith("/audit-unavailable")
        assert body["request_id"] == response.headers["X-Request-Id"]
        request_id = response.headers["X-Request-Id"]
        assert request_id not in await stack.ledger_hits(), "forwarded without an audit record"
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_audit"))
        recovered = await stack.client.get(
            "/api/invoices/7", headers=stack.cookie("alice@acme.test")
        )
        assert recovered.status == 200
        assert (await stack.ledger_hits())[recovered.headers["X-Request-Id"]] == 1


async def test_each_stage_of_a_forwarded_request_is_timed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for _ in range(3):
            response = await stack.client.get(
                "/api/invoices/7", headers=stack.cookie("alice@acme.test")
            )
            assert response.status == 200
        metrics = stack.app[GATEWAY].metrics.exposition().decode()
        for stage in STAGES:
            assert f'gatehold_stage_seconds_count{{stage="{stage}"}} 3.0' in metrics, stage


async def test_allowed_and_refused_requests_are_counted_by_route_and_reason(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie("alice@acme.test")
        for path in ("/api/invoices/7", "/api/invoices/7", "/api/invoices/8"):
            await (await stack.client.get(path, headers=alice)).read()
        metrics = stack.app[GATEWAY].metrics.exposition().decode()
        counted = {
            line.split("{", 1)[1].rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("gatehold_decisions_total{")
        }
        allowed = [v for k, v in counted.items() if 'route="invoice-read"' in k and "allow" in k]
        denied = [v for k, v in counted.items() if 'route="invoice-read"' in k and "deny" in k]
        assert allowed == [2.0] and denied == [1.0]
        assert 'gatehold_request_seconds_count{decision="allow"} 2.0' in metrics
        assert 'gatehold_request_seconds_count{decision="deny"} 1.0' in metrics


async def test_committed_records_also_go_to_the_json_lines_sink_and_are_counted(
    tmp_path: Path,
) -> None:
    sink = tmp_path / "audit.jsonl"
    async with running_stack(tmp_path, audit={"jsonl_path": str(sink)}) as stack:
        response = await stack.client.get(
            "/api/invoices/7", headers=stack.cookie("alice@acme.test")
        )
        assert response.status == 200
        rows = await stack.audit_rows(response.headers["X-Request-Id"])
        lines = [json.loads(line) for line in sink.read_text().splitlines()]
        mine = [line for line in lines if line["request_id"] == rows[0]["request_id"]]
        assert [(m["seq"], m["kind"], m["hash"]) for m in mine] == [
            (r["seq"], r["kind"], r["hash"]) for r in rows
        ]
        metrics = stack.app[GATEWAY].metrics.exposition().decode()
        committed = next(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("gatehold_audit_entries_total ")
        )
        assert committed >= len(lines) >= 2
        assert "gatehold_audit_failures_total 0.0" in metrics


# --- The order, seen from the app: the record is committed when the request arrives ---


@dataclass
class Witness:
    """What a real upstream found in the gateway's audit store the moment each request hit it."""

    store: Path | None = None
    found: dict[str, tuple[str, str, str, str] | None] = field(default_factory=dict)
    """request id → (decision, reason, route, method) of its committed ``request`` row."""

    def look_up(self, request_id: str) -> None:
        """Read the committed row through a connection of this process's own, read-only."""
        assert self.store is not None
        uri = f"file:{self.store}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT decision, reason, route, method FROM audit_log "
                "WHERE request_id = ? AND kind = 'request'",
                (request_id,),
            ).fetchone()
        conn.close()
        self.found[request_id] = None if row is None else tuple(row)


WITNESS = web.AppKey("witness", Witness)


async def _witnessed(request: web.Request) -> web.StreamResponse:
    witness = request.app[WITNESS]
    witness.look_up(request.headers["X-Request-Id"])  # before reading anything else
    if request.headers.get("Upgrade", "").lower() == "websocket":
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str("hello")
        await socket.close()
        return socket
    await request.read()
    return web.json_response({"ok": True})


@asynccontextmanager
async def witness_upstream() -> AsyncIterator[tuple[str, Witness]]:
    witness = Witness()
    app = web.Application()
    app[WITNESS] = witness
    app.router.add_route("*", "/{tail:.*}", _witnessed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", witness
    finally:
        await runner.cleanup()


WITNESS_RULES = """
version: 1
upstreams:
  app: {{url: "{url}"}}
roles:
  standard: {{can: [read, write, delete]}}
routes:
  - name: open
    match: {{path: "/open/{{rest:path}}", methods: [GET, HEAD]}}
    upstream: app
    public: true
  - name: feed
    match: {{path: "/ws/{{tenant:slug}}/feed", methods: [GET]}}
    upstream: app
    tenant: path.tenant
    websocket: true
  - name: api
    match: {{path: "/api/{{rest:path}}"}}
    upstream: app
"""


async def _chunks() -> AsyncIterator[bytes]:
    for n in range(5):
        yield f"part {n};".encode()
        await asyncio.sleep(0)


async def _send(stack: Stack, number: int) -> str:
    """One request of one of several kinds; returns its request id."""
    alice = stack.cookie("alice@acme.test")
    kind = number % 6
    if kind == 0:
        response = await stack.client.get(f"/api/items/{number}", headers=alice)
    elif kind == 1:
        response = await stack.client.post("/api/items", json={"n": number}, headers=alice)
    elif kind == 2:
        response = await stack.client.put(f"/api/items/{number}", data=_chunks(), headers=alice)
    elif kind == 3:
        response = await stack.client.delete(f"/api/items/{number}", headers=alice)
    elif kind == 4:
        response = await stack.client.head(f"/open/page-{number}")
    else:
        response = await stack.client.get(f"/open/page-{number}")
    await response.read()
    assert response.status == 200, response.status
    return response.headers["X-Request-Id"]


async def test_every_request_is_committed_when_the_app_receives_it(tmp_path: Path) -> None:
    async with witness_upstream() as (url, witness):
        async with running_stack(tmp_path, rules_text=WITNESS_RULES.format(url=url)) as stack:
            witness.store = Path(str(stack.app[ENGINE].url.database))
            sent = await asyncio.gather(*(_send(stack, n) for n in range(36)))  # group commits
            sent += [await _send(stack, n) for n in range(6)]  # one at a time
            async with stack.client.ws_connect(
                "/ws/acme/feed",
                headers=stack.cookie("alice@acme.test")
                | {"Origin": stack.settings.server.public_url},
            ) as socket:
                assert (await socket.receive_str()) == "hello"
            ws_rows = [rid for rid in witness.found if rid not in sent]
    assert len(ws_rows) == 1, "the WebSocket upgrade reached the app once"
    assert sorted(witness.found) == sorted([*sent, *ws_rows]), "every request reached the app"
    missing = [rid for rid, row in witness.found.items() if row is None]
    assert missing == [], f"{len(missing)} requests reached the app before their audit record"
    rows = list(witness.found.values())
    assert all(row is not None and row[0] == "allow" for row in rows)
    methods = {row[3] for row in rows if row is not None}
    assert methods == {"GET", "POST", "PUT", "DELETE", "HEAD"}
    routes = {row[2] for row in rows if row is not None}
    assert routes == {"open", "api", "feed"}


async def test_the_witness_sees_a_record_that_was_never_committed(tmp_path: Path) -> None:
    """The witness can fail: a request id with no committed row is reported as such."""
    async with witness_upstream() as (url, witness):
        async with running_stack(tmp_path, rules_text=WITNESS_RULES.format(url=url)) as stack:
            witness.store = Path(str(stack.app[ENGINE].url.database))
            async with aiohttp.ClientSession() as http:  # straight to the app, around the gateway
                async with http.get(f"{url}/api/x", headers={"X-Request-Id": "f" * 32}) as r:
                    assert r.status == 200
    assert witness.found == {"f" * 32: None}
