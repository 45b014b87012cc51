"""Two gateways on one PostgreSQL store both follow the shadow run, by NOTIFY.

A superadmin starts a shadow on one gateway; the other decides in shadow within a
second (its fallback poll is five seconds, so only the notification can make it). Both
processes' differences land in the one report, counted together; a stop reaches both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin import shadow as shadow_admin
from gateway.admin.shadow import ShadowReport
from gateway.shadow import SHADOW
from gateway.store.notify import NOTIFIED_POLL_SECONDS
from gateway.store.shadow_runs import ShadowRun
from tests.integration.test_rules_shadow import ADMIN_MANAGED, WRITE_NOT_READ, context, propose
from tests.support.postgres import create_database, database_dsn, drop_database
from tests.support.stack import Stack, replica, running_stack


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    name = await create_database("shadow")
    try:
        yield database_dsn(name)
    finally:
        await drop_database(name)


async def until(check: Any, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < 5, f"never: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def rita_lists(stack: Stack) -> None:
    async with stack.client.get("/api/invoices", headers=stack.cookie("rita@acme.test")) as got:
        assert got.status == 200, "the shadow changed an answer"


async def test_postgres_replicas_follow_the_shadow_by_notify(tmp_path: Path, pg_dsn: str) -> None:
    assert NOTIFIED_POLL_SECONDS >= 5, "a fast poll would hide a missing NOTIFY"
    overrides: dict[str, Any] = {**ADMIN_MANAGED, "store": {"dsn": pg_dsn}}
    async with running_stack(tmp_path, follow=True, **overrides) as first:
        async with replica(first) as second:
            assert first.follower.listening and second.follower.listening
            draft = await propose(first, WRITE_NOT_READ)
            run = await shadow_admin.start_shadow(context(first), draft.id)
            assert isinstance(run, ShadowRun)
            elapsed = await until(
                lambda: all(s.app[SHADOW].current is not None for s in (first, second)),
                "both gateways decide in shadow",
            )
            assert elapsed < 2.0, f"followed after {elapsed:.2f}s"
            for gateway in (first, second, second):
                await rita_lists(gateway)
            await first.settled()
            for gateway in (first, second):
                await gateway.app[SHADOW].writer.flush()
            report = await shadow_admin.shadow_report(context(second))
            assert isinstance(report, ShadowReport)
            assert (report.run.decided, report.differences) == (3, 3)
            [group] = report.groups
            assert group.count == 3 and len(group.samples) == 3

            assert isinstance(await shadow_admin.stop_shadow(context(second)), ShadowRun)
            await until(
                lambda: all(s.app[SHADOW].current is None for s in (first, second)),
                "both gateways stop deciding in shadow",
            )
