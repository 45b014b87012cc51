"""A client that goes away while its answer is being sent: recorded, not blamed on anyone.

People close tabs during a download and clients time out on slow pages. Gatehold must
record how far such an answer got, on the request's outcome row, and must neither log
an "unhandled error" (answering 500 to nobody) nor blame the upstream for breaking off
(a false ``upstream-reset``, an upstream error counted in the metrics). Two moments: the
client leaves before the answer's head is written, and in the middle of its body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.stack import Stack, running_stack
from tests.support.waiting import until

RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 10s}
roles:
  standard: {can: [read]}
routes:
  - name: slow
    match: {path: "/slow", methods: [GET]}
    upstream: ledger
  - name: big
    match: {path: "/big/{mib:int}", methods: [GET]}
    upstream: ledger
"""
MIB = 1024 * 1024


async def forwarded_id(stack: Stack, before: set[str]) -> str:
    """The request id of the one request Ledger received since ``before``."""
    found: list[str] = []

    async def arrived() -> bool:
        found[:] = [rid for rid in await stack.ledger_hits() if rid not in before | {"-"}]
        return bool(found)

    await until(arrived, "the request reaches Ledger")
    assert len(found) == 1, found
    return found[0]


async def outcome_of(stack: Stack, request_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    async def recorded() -> bool:
        rows[:] = [r for r in await stack.audit_rows(request_id) if r["kind"] == "outcome"]
        return bool(rows)

    await until(recorded, "the request's outcome is recorded")
    assert len(rows) == 1, rows
    row = rows[0]
    data = row["data"]
    return {**row, "data": json.loads(data) if isinstance(data, str) else data}


def assert_nobody_blamed(stack: Stack, caplog: pytest.LogCaptureFixture, outcome: dict[str, Any]):
    assert outcome["reason"] in (None, ""), outcome  # not a refusal after the fact
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in messages if "unhandled error" in m], messages
    assert not [m for m in messages if "broke off its answer" in m], messages


async def test_a_client_gone_before_the_answer_s_head_is_recorded_as_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, rules_text=RULES) as stack:
        before = set(await stack.ledger_hits())
        with pytest.raises(TimeoutError):
            await stack.client.get(
                "/slow?seconds=1",
                headers=stack.cookie("alice@acme.test"),
                timeout=aiohttp.ClientTimeout(total=0.3),
            )
        request_id = await forwarded_id(stack, before)
        outcome = await outcome_of(stack, request_id)  # once Ledger answers, a second on
        assert outcome["data"]["client_gone"] is True
        assert (outcome["data"]["status"], outcome["data"]["bytes"]) == (200, 0)
        assert_nobody_blamed(stack, caplog, outcome)
        # and the gateway goes on answering
        answer = await stack.client.get("/slow?seconds=0", headers=stack.cookie("alice@acme.test"))
        assert answer.status == 200


async def test_a_client_gone_in_the_middle_of_a_body_is_recorded_with_how_far_it_got(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, rules_text=RULES) as stack:
        before = set(await stack.ledger_hits())
        response = await stack.client.get("/big/64", headers=stack.cookie("alice@acme.test"))
        assert response.status == 200
        await response.content.readexactly(256 * 1024)
        response.close()  # the person closed the tab: the connection goes
        request_id = await forwarded_id(stack, before)
        outcome = await outcome_of(stack, request_id)
        assert outcome["data"]["client_gone"] is True
        assert outcome["data"]["status"] == 200
        assert 256 * 1024 <= outcome["data"]["bytes"] < 64 * MIB
        assert_nobody_blamed(stack, caplog, outcome)
        await asyncio.sleep(0)
