"""PostgreSQL restarted under load: two gateways on one cluster keep I5 and recover alone.

The test starts its own cluster from the installed binaries (``tests.support.pg_cluster``)
so it can stop it: once with ``pg_ctl stop -m fast`` (sessions ended cleanly), once with
``-m immediate`` (the server killed, as in a crash). Two gateways share it, each an app
instance in the test's loop with its own pools, caches, audit writer and rules follower,
in front of one real Ledger. Several clients keep reading their own and foreign
invoices, listing, and creating reports through both, the whole time.

While the cluster is down every answer is the gateway's own 503 (problem JSON with a
``Retry-After``), never a 500 and never slower than ``ANSWER_BOUND``; the liveness page
stays 200 while readiness is 503. Afterwards: every request Ledger received has its
committed ``request`` row (nothing forwarded unaudited, whatever the timing of the
stop); both gateways serve again within ``RECOVERY_BOUND`` without a restart; the
keyed chain verifies (no gap, no fork); and each outage is one warning per
component in the log, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from gateway.admin.audit_trail import verify_trail
from gateway.app import ENGINE
from gateway.readiness import not_ready_reasons
from tests.support.pg_cluster import Cluster, StopMode, started_cluster
from tests.support.stack import Stack, replica, running_stack

ANSWER_BOUND = 5.0
"""No request may wait longer than this for its answer, store or no store."""
RECOVERY_BOUND = 10.0
"""Both gateways serve 200 again this long after the cluster is back, at the latest."""
OUTAGE_SECONDS = 2.5
CLIENTS_PER_GATEWAY = 4
MINE = ("alice@acme.test", "GET", "/api/invoices/7", 200)
"""An owned object: served while the store is up."""
CALLS: tuple[tuple[str, str, str, int], ...] = (
    MINE,
    ("alice@acme.test", "GET", "/api/invoices/8", 404),  # globex's invoice: foreign
    ("bob@globex.test", "GET", "/api/invoices/8", 200),
    ("bob@globex.test", "GET", "/api/invoices/7", 404),
    ("rita@acme.test", "GET", "/api/invoices", 200),
    ("rita@acme.test", "POST", "/api/invoices", 403),  # readonly may not write
    ("alice@acme.test", "POST", "/api/reports", 201),  # a write that teaches an owner
)
"""(who, method, path, the answer while the store is up)."""


@dataclass(frozen=True, slots=True)
class Answer:
    gateway: int
    call: tuple[str, str, str, int]
    began: float
    ended: float
    status: int
    request_id: str
    retry_after: str | None
    problem: str
    """The problem ``type`` of the gateway's own JSON answer, else ``""``."""


@dataclass
class Load:
    """Clients sending ``CALLS`` through every gateway until told to stop."""

    gateways: list[Stack]
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, index: int, seed: int) -> None:
        choose = random.Random(seed)
        stack = self.gateways[index]
        while not self.stopping.is_set():
            call = choose.choice(CALLS)
            self.answers.append(await self.send(index, stack, call))
            await asyncio.sleep(choose.uniform(0.0, 0.03))

    async def send(self, index: int, stack: Stack, call: tuple[str, str, str, int]) -> Answer:
        email, method, path, _ = call
        headers = stack.cookie(email) | {"Accept": "application/json"}
        body: dict[str, Any] | None = {"title": "monthly"} if method == "POST" else None
        began = time.monotonic()
        async with asyncio.timeout(ANSWER_BOUND):
            async with stack.client.request(method, path, headers=headers, json=body) as reply:
                problem = ""
                if reply.content_type == "application/problem+json":
                    problem = str((await reply.json())["type"])
                else:
                    await reply.read()
                return Answer(
                    index,
                    call,
                    began,
                    time.monotonic(),
                    reply.status,
                    reply.headers.get("X-Request-Id", ""),
                    reply.headers.get("Retry-After"),
                    problem,
                )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with started_cluster("gatehold-restart-pg-") as running:
        yield running


async def serves_again(stack: Stack, since: float) -> float:
    """Seconds after ``since`` until ``stack`` serves an owned object again."""
    email, _, path, _ = MINE
    while True:
        async with stack.client.get(path, headers=stack.cookie(email)) as reply:
            if reply.status == 200:
                return time.monotonic() - since
        assert time.monotonic() - since < RECOVERY_BOUND, f"still {reply.status}"
        await asyncio.sleep(0.1)


async def ready_again(stack: Stack, since: float) -> None:
    while reasons := await not_ready_reasons(stack.app, 2.0):
        assert time.monotonic() - since < RECOVERY_BOUND, reasons
        await asyncio.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Outage:
    stopping: float
    """When ``pg_ctl stop`` was called."""
    stopped: float
    """When it returned: the server is gone."""
    restarting: float
    """When ``pg_ctl start`` was called."""


async def outage(cluster: Cluster, load: Load, mode: StopMode) -> Outage:
    """Stop the cluster under load for ``OUTAGE_SECONDS``, then start it again."""
    await asyncio.sleep(1.0)  # steady load first
    stopping = time.monotonic()
    await asyncio.to_thread(cluster.stop, mode)
    stopped = time.monotonic()
    for stack in load.gateways:
        reasons = await not_ready_reasons(stack.app, 2.0)
        assert reasons == ["store: not answering"], reasons
        async with stack.client.get("/.gatehold/health") as liveness:
            assert liveness.status == 200, "liveness follows the process, not the store"
    await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
    restarting = time.monotonic()
    await asyncio.to_thread(cluster.start)
    return Outage(stopping, stopped, restarting)


def assert_down_answers(answers: list[Answer], stopped: float, restarting: float) -> None:
    """Requests sent and answered while the cluster was down: all the gateway's 503."""
    down = [a for a in answers if a.began >= stopped + 0.1 and a.ended <= restarting]
    assert len(down) >= 10, f"only {len(down)} requests while the cluster was down"
    wrong = [a for a in down if a.status != 503]
    assert not wrong, wrong[:5]
    for answer in down:
        assert answer.problem.endswith(("/store-unavailable", "/audit-unavailable")), answer
        assert answer.retry_after is not None and answer.retry_after.isdigit(), answer
        assert answer.request_id, answer


async def assert_every_forward_audited(stack: Stack, answers: list[Answer]) -> None:
    """Every request id Ledger saw has a committed, allowing ``request`` row."""
    hits = await stack.ledger_hits()
    hits.pop("-", None)  # owner lookups: the gateway's own calls, no request id
    forwarded = set(hits)
    assert forwarded, "nothing reached Ledger"
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            text("SELECT request_id FROM audit_log WHERE kind = 'request' AND decision = 'allow'")
        )
        audited = {row.request_id for row in rows}
    assert not forwarded - audited, f"forwarded unaudited: {sorted(forwarded - audited)[:5]}"
    assert all(count == 1 for count in hits.values()), "a request was forwarded twice"
    answered = {a.request_id for a in answers if a.status in (200, 201)}
    assert answered <= forwarded, "a success the app never saw"


def outage_warnings(records: list[logging.LogRecord], since: float) -> dict[str, int]:
    """Warnings and errors logged after ``since`` (wall clock), per message prefix."""
    counts: dict[str, int] = {}
    for record in records:
        if record.created < since or record.levelno < logging.WARNING:
            continue
        if record.name == "gatehold.access":
            continue  # one line per answered request by design
        key = f"{record.name}: {re.sub(r'[0-9]+', 'N', record.getMessage()[:60])}"
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restarted_under_load(
    tmp_path: Path, cluster: Cluster, mode: StopMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        running_stack(tmp_path, follow=True, store={"dsn": cluster.dsn}) as first,
        replica(first) as second,
    ):
        load = Load([first, second])
        clients = [
            asyncio.create_task(load.client(index, seed=index * 100 + n))
            for index in (0, 1)
            for n in range(CLIENTS_PER_GATEWAY)
        ]
        wall = time.time()
        try:
            down = await outage(cluster, load, mode)
            recovered = await asyncio.gather(
                serves_again(first, down.restarting), serves_again(second, down.restarting)
            )
            await asyncio.sleep(0.5)  # steady load after the restart as well
        finally:
            load.stopping.set()
            await asyncio.gather(*clients)
        for stack in (first, second):
            await ready_again(stack, down.restarting)
            await stack.settled()

        before = [a for a in load.answers if a.ended < down.stopping]
        assert before and all(a.status == a.call[3] for a in before), [
            a for a in before if a.status != a.call[3]
        ][:5]
        assert not [a for a in load.answers if a.status == 500], "a 500 during the outage"
        assert_down_answers(load.answers, down.stopped, down.restarting)
        assert max(recovered) < RECOVERY_BOUND
        after = [a for a in load.answers if a.began > down.restarting + max(recovered)]
        assert after and all(a.status == a.call[3] for a in after), [
            a for a in after if a.status != a.call[3]
        ][:5]
        await assert_every_forward_audited(first, load.answers)

        trail = await verify_trail(first.settings)
        assert trail.problems == [], trail.problems

        warnings = outage_warnings(caplog.records, wall)
        assert all(count <= 4 for count in warnings.values()), "\n".join(
            f"{count} × {message}" for message, count in sorted(warnings.items())
        )
