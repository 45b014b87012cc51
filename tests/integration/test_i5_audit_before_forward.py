"""I5: no request reaches the app before its audit record is durably committed."""

from __future__ import annotations

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
