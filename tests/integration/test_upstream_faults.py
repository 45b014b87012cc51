"""Upstream faults: each gets a clear answer, an audited outcome, and no one else suffers.

A real gateway forwards to a real misbehaving upstream (``support.faulty_upstream``, a
raw socket server): nothing listening, a connection reset mid-body, an upstream that
never answers, and answers that are not HTTP. Each must give the client a problem answer
(502/504 and its type) or, once the answer has begun, a visibly broken one, never a
hang or a 500; the request's entry is committed before forwarding and its outcome row
names the fault. Requests to another upstream, and to the same upstream's healthy
paths, go on being answered while one hangs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.faulty_upstream import SENT_BEFORE_CUT, FaultyUpstream, faulty_upstream
from tests.support.stack import Stack, running_stack
from tests.support.waiting import until

UPSTREAM_TIMEOUT = 1.0
"""The faulty upstream's ``timeout`` in the rules: the deadline for its answer."""

RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 5s}
  faulty: {url: "%(faulty)s", timeout: 1s}
  nowhere: {url: "http://127.0.0.1:9", timeout: 1s}
roles:
  standard: {can: [read, write]}
routes:
  - name: echo
    match: {path: "/api/echo/{rest:path}"}
    upstream: ledger
  - name: faulty
    match: {path: "/faulty/{rest:path}", methods: [GET]}
    upstream: faulty
  - name: down
    match: {path: "/down", methods: [GET]}
    upstream: nowhere
"""

JSON = {"Accept": "application/json"}


@dataclass(frozen=True)
class Fault:
    path: str
    status: int
    reason: str
    reached: bool
    """Whether the request reaches the upstream before the fault shows."""


FAULTS = [
    Fault("/down", 502, "upstream-refused", reached=False),
    Fault("/faulty/garbage", 502, "upstream-invalid", reached=True),
    Fault("/faulty/bad-header", 502, "upstream-invalid", reached=True),
    Fault("/faulty/ctl-header", 502, "upstream-invalid", reached=True),
    Fault("/faulty/huge-header", 502, "upstream-invalid", reached=True),
    Fault("/faulty/hang", 504, "upstream-timeout", reached=True),
]


@asynccontextmanager
async def faulty_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, FaultyUpstream]]:
    async with faulty_upstream() as faulty:
        async with running_stack(tmp_path, rules_text=RULES % {"faulty": faulty.url}) as stack:
            yield stack, faulty


async def outcome_of(stack: Stack, request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the request's entry, its outcome row, with ``data`` decoded)."""
    rows = await stack.audit_rows(request_id)
    kinds = [row["kind"] for row in rows]
    assert kinds == ["request", "outcome"], f"{request_id}: audit rows {kinds}"
    entry, outcome = rows
    assert entry["seq"] < outcome["seq"]
    outcome["data"] = json.loads(outcome["data"])
    return entry, outcome


async def check_fault(stack: Stack, faulty: FaultyUpstream, fault: Fault) -> list[str]:
    """Ask for ``fault.path``; every way the answer falls short, as readable lines."""
    problems: list[str] = []
    started = time.monotonic()
    response = await stack.client.get(fault.path, headers=stack.cookie("alice@acme.test") | JSON)
    took = time.monotonic() - started
    text = await response.text()
    rid = response.headers.get("X-Request-Id", "")
    if response.status != fault.status:
        problems.append(f"{fault.path}: status {response.status}, wanted {fault.status}")
    if not text.startswith("{") or json.loads(text).get("type") != (
        f"/.gatehold/problems/{fault.reason}"
    ):
        problems.append(f"{fault.path}: problem {text[:120]!r}, wanted type {fault.reason}")
    if "Traceback" in text:
        problems.append(f"{fault.path}: a stack trace in the answer")
    if took > UPSTREAM_TIMEOUT + 10:
        problems.append(f"{fault.path}: answered after {took:.1f} s")
    if faulty.hits(rid) != (1 if fault.reached else 0):
        problems.append(f"{fault.path}: the upstream saw it {faulty.hits(rid)} times")
    entry, outcome = await outcome_of(stack, rid)
    if entry["decision"] != "allow":
        problems.append(f"{fault.path}: entry decision {entry['decision']}")
    if outcome["reason"] != fault.reason or outcome["data"]["status"] != fault.status:
        problems.append(f"{fault.path}: outcome {outcome['reason']} {outcome['data']}")
    return problems


async def test_each_upstream_fault_is_a_clear_problem_answer_with_its_outcome_audited(
    tmp_path: Path,
) -> None:
    async with faulty_stack(tmp_path) as (stack, faulty):
        problems: list[str] = []
        for fault in FAULTS:
            problems += await check_fault(stack, faulty, fault)
        assert not problems, "\n".join(problems)
        print(f"upstream faults: {len(FAULTS)} kinds answered 502/504 and audited")


async def test_a_browser_gets_a_page_saying_the_application_is_not_valid_http(
    tmp_path: Path,
) -> None:
    async with faulty_stack(tmp_path) as (stack, _):
        response = await stack.client.get(
            "/faulty/garbage", headers=stack.cookie("alice@acme.test") | {"Accept": "text/html"}
        )
        assert response.status == 502
        page = await response.text()
        assert "not valid HTTP" in page and response.headers["X-Request-Id"] in page
        assert "Traceback" not in page


async def test_an_answer_cut_mid_body_arrives_visibly_broken_never_hangs_and_is_audited(
    tmp_path: Path,
) -> None:
    async with faulty_stack(tmp_path) as (stack, faulty):
        for cut in ("/faulty/reset", "/faulty/close", "/faulty/stall"):
            response = await stack.client.get(cut, headers=stack.cookie("alice@acme.test"))
            assert response.status == 200  # the head went out before the upstream broke off
            rid = response.headers["X-Request-Id"]
            try:
                async with asyncio.timeout(UPSTREAM_TIMEOUT + 30):
                    body = await response.read()
            except aiohttp.ClientPayloadError:
                pass  # the client sees a broken answer
            else:
                raise AssertionError(f"{cut}: a cut answer of {len(body)} bytes passed as whole")
            assert faulty.hits(rid) == 1
            _, outcome = await outcome_of(stack, rid)
            assert outcome["reason"] == "upstream-reset"
            assert outcome["data"]["status"] == 200
            assert 0 <= outcome["data"]["bytes"] <= SENT_BEFORE_CUT
        # The gateway is fine afterwards: the same route's healthy path answers.
        ok = await stack.client.get("/faulty/ok", headers=stack.cookie("alice@acme.test"))
        assert ok.status == 200 and await ok.text() == "ok"


async def test_a_hanging_upstream_holds_up_no_one_else(tmp_path: Path) -> None:
    async with faulty_stack(tmp_path) as (stack, faulty):
        cookie = stack.cookie("alice@acme.test")
        hung = [
            asyncio.create_task(stack.client.get("/faulty/hang", headers=cookie | JSON))
            for _ in range(5)
        ]
        await until(
            lambda: sum(faulty.seen.values()) >= len(hung), "every hanging request is upstream"
        )
        # Meanwhile: another upstream, and the same upstream's other paths, answer.
        other = await stack.client.get("/api/echo/x", headers=cookie)
        assert other.status == 200
        same = await stack.client.get("/faulty/ok", headers=cookie)
        assert same.status == 200 and await same.text() == "ok"
        assert not any(task.done() for task in hung), "answered before the upstream's deadline"
        for response in await asyncio.gather(*hung):
            assert response.status == 504
            body = await response.json()
            assert body["type"] == "/.gatehold/problems/upstream-timeout"
            _, outcome = await outcome_of(stack, response.headers["X-Request-Id"])
            assert outcome["reason"] == "upstream-timeout"
