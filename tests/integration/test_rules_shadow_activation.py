"""Activating from shadow drains first: nothing a gateway holds in memory is missed.

Two gateways on one store (SQLite, followed by polling; PostgreSQL, by NOTIFY). Each
keeps its shadow findings in memory and writes them about once a second, so the report
in the store lags what the gateways found. Activation ends the run's judging, waits
``DRAIN_SECONDS`` for every gateway's last findings, then decides and activates in one
transaction. The attacks: a difference only a replica holds when activation is asked (a
report read at once would say clean); two admins activating at once; a gateway's batch
arriving after the run ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin import shadow as shadow_admin
from gateway.admin.service import AdminError
from gateway.admin.shadow import DRAIN_SECONDS, ShadowReport
from gateway.app import ENGINE
from gateway.shadow import SHADOW
from gateway.shadow_sync import SHADOW_FOLLOWER
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from gateway.store.shadow_runs import GroupKey, Sample, ShadowRun
from tests.integration.test_rules_shadow import (
    ADMIN_MANAGED,
    SAME_DECISIONS,
    WRITE_NOT_READ,
    context,
    propose,
)
from tests.support.postgres import create_database, database_dsn, drop_database
from tests.support.stack import Stack, replica, running_stack

RITA, ALICE = "rita@acme.test", "alice@acme.test"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings overrides for the shared store: the stack's SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        yield dict(ADMIN_MANAGED)
        return
    name = await create_database("shadowact")
    try:
        yield {**ADMIN_MANAGED, "store": {"dsn": database_dsn(name)}}
    finally:
        await drop_database(name)


async def until(check: Any, what: str) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < 5, f"never: {what}"
        await asyncio.sleep(0.02)


async def get(stack: Stack, target: str, email: str) -> None:
    async with stack.client.get(target, headers=stack.cookie(email)) as answer:
        assert answer.status == 200, "the shadow changed an answer"
    await stack.settled()


async def in_shadow(first: Stack, second: Stack, text: str) -> ShadowRun:
    """Propose ``text`` and run it in shadow on both gateways."""
    draft = await propose(first, text)
    run = await shadow_admin.start_shadow(context(first), draft.id)
    assert isinstance(run, ShadowRun), run
    for gateway in (first, second):
        await gateway.app[SHADOW_FOLLOWER].step()
        assert gateway.app[SHADOW].current is not None
    return run


async def test_a_difference_only_a_replica_holds_refuses_the_activation(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    async with running_stack(tmp_path, follow=True, **store) as first:
        async with replica(first) as second:
            engine = first.app[ENGINE]
            active = await version_store.active_id(engine)
            run = await in_shadow(first, second, WRITE_NOT_READ)
            # The replica writes only when it is told to stop judging: its periodic
            # flush is off, so what it finds stays in its memory until the drain.
            await second.app[SHADOW].writer.close()
            await get(first, "/api/invoices/1", ALICE)  # both versions allow: agreed
            await first.app[SHADOW].writer.flush()
            await get(second, "/api/invoices", RITA)  # the shadow refuses rita: differs
            written = await shadow_admin.shadow_report(context(first))
            assert isinstance(written, ShadowReport)
            assert written.clean, "the store alone says clean: only the replica knows"

            refused = await shadow_admin.activate_shadow(context(first))

            assert isinstance(refused, AdminError) and refused.code == "conflict"
            assert "not clean: 1 of 2 decisions differ" in refused.message, refused.message
            assert await version_store.active_id(engine) == active, "nothing activated"
            report = await shadow_admin.shadow_report(context(first))
            assert isinstance(report, ShadowReport) and report.run.id == run.id
            assert report.run.running, "the shadow goes on after a refusal"
            [group] = report.groups
            assert group.samples[0].principal == RITA
            await until(
                lambda: all(s.app[SHADOW].current is not None for s in (first, second)),
                "both gateways judge again",
            )
            activated = await first.events("rules-activated")
            assert all(event["data"]["version"] != run.version_id for event in activated)


async def test_two_activations_at_once_only_one_goes_ahead(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    async with running_stack(tmp_path, follow=True, **store) as first:
        async with replica(first) as second:
            before = await version_store.active_id(first.app[ENGINE])
            run = await in_shadow(first, second, SAME_DECISIONS)
            for gateway in (first, second):
                await get(gateway, "/api/invoices", RITA)
                await gateway.app[SHADOW].writer.flush()

            outcomes = await asyncio.gather(
                shadow_admin.activate_shadow(context(first), comment="from the first"),
                shadow_admin.activate_shadow(context(second), comment="from the second"),
            )

            won = [o for o in outcomes if isinstance(o, ShadowReport)]
            lost = [o for o in outcomes if isinstance(o, AdminError)]
            assert len(won) == 1 and len(lost) == 1, outcomes
            assert won[0].clean and won[0].run.id == run.id and won[0].run.ended
            assert won[0].active == before, "the report names the version it was beside"
            assert lost[0].code == "conflict", lost[0]
            assert await version_store.active_id(first.app[ENGINE]) == run.version_id
            activated = [
                e
                for e in await first.events("rules-activated")
                if e["data"]["version"] == run.version_id
            ]
            assert len(activated) == 1, "one activation, audited once"
            assert len(await first.events("rules-shadow-stopped")) == 1
            assert await shadow_store.current(first.app[ENGINE]) is None


async def test_a_batch_after_the_activation_leaves_the_ended_run_as_decided(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    async with running_stack(tmp_path, follow=True, **store) as first:
        async with replica(first) as second:
            engine = first.app[ENGINE]
            run = await in_shadow(first, second, SAME_DECISIONS)
            await get(first, "/api/invoices", RITA)
            await first.app[SHADOW].writer.flush()
            activated = await shadow_admin.activate_shadow(context(first))
            assert isinstance(activated, ShadowReport) and activated.clean, activated
            decided = activated.run.decided

            # A gateway that missed the drain (say, cut off from the store meanwhile)
            # writes a difference for the run after it ended.
            writer = second.app[SHADOW].writer
            key = GroupKey(run.version_id, "invoice-list", "invoice-list", "allow",
                           "role-allowed", "deny", "role-forbidden")  # fmt: skip
            sample = Sample(time.time(), "late-1", "GET", "/api/invoices", RITA, "acme",
                            "allowed", "forbidden")  # fmt: skip
            writer.counted(run.id, agreed=False, unjudged=False)
            writer.differed(run.id, key, sample)
            before = writer.dropped_total
            await writer.flush()

            ended = await shadow_store.get_run(engine, run.id)
            assert ended is not None and ended.ended
            assert (ended.decided, ended.agreed) == (decided, activated.run.agreed)
            assert await shadow_store.differences(engine, run.id) == [], "no group added"
            assert ended.dropped == 1, "the late difference is counted, as dropped"
            assert writer.dropped_total == before + 1
            report = await shadow_admin.shadow_report(context(first), run.id)
            assert isinstance(report, ShadowReport)
            assert not report.clean and "1 dropped" in report.verdict
            assert await version_store.active_id(engine) == run.version_id


def test_the_drain_covers_a_polling_follower_and_a_flush() -> None:
    from gateway.shadow import FLUSH_SECONDS
    from gateway.store.notify import POLL_SECONDS

    assert DRAIN_SECONDS > POLL_SECONDS + FLUSH_SECONDS
