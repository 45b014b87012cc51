"""I5: no request reaches the app before its audit record is durably committed."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.metrics import STAGES
from tests.support.stack import running_stack


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
