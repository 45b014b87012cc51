"""An activated rules version reaches every gateway sharing the store within a second.

Two real gateways (two app instances, each with its own pools, caches and follower)
on one store, in front of one real Ledger. A superadmin activates a version through the
admin service on one; the other applies it within a second: on SQLite by its poll, on
PostgreSQL by LISTEN/NOTIFY (its fallback poll is five seconds, so only the
notification can make the second). A request begun before the activation finishes
under the rules it started with.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.admin import rules as lifecycle
from gateway.admin import service as admin
from gateway.admin.service import AdminContext
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.live import LIVE
from gateway.store import rule_versions as version_store
from gateway.store.notify import NOTIFIED_POLL_SECONDS
from gateway.store.rule_versions import VersionRow
from tests.support.components import require_component
from tests.support.stack import DEMO_RULES, Stack, replica, running_stack
from tests.support.waiting import until

READONLY = "  readonly: {can: [read]}\n"
NARROWED = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [download]}\n")
SLOW_ROUTE = '  - name: slow\n    match: {path: "/slow", methods: [GET]}\n    upstream: ledger\n'
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}


def context(stack: Stack) -> AdminContext:
    return AdminContext(
        stack.app[ENGINE],
        stack.app[GATEWAY].audit,
        admin.CLI_ADMIN,
        frozenset(stack.ruleset.roles),
        settings=stack.settings,
    )


async def status(stack: Stack, path: str, email: str) -> int:
    async with stack.client.get(path, headers=stack.cookie(email)) as answer:
        return answer.status


async def propose(stack: Stack, text: str) -> VersionRow:
    version = await lifecycle.propose_version(context(stack), text, "narrow readonly")
    assert isinstance(version, VersionRow), version
    return version


async def seconds_until_refused(stack: Stack) -> float:
    started = time.monotonic()
    while await status(stack, "/api/invoices", "rita@acme.test") != 403:
        assert time.monotonic() - started < 5, "the replica never applied the new version"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def activation_reaches_the_replica(first: Stack) -> None:
    async with replica(first) as second:
        for gateway in (first, second):
            assert await status(gateway, "/api/invoices", "rita@acme.test") == 200
        start = first.follower.applied
        assert second.follower.applied == start, "both start from the store's active version"
        version = await propose(first, NARROWED)

        activated = await lifecycle.activate_version(context(first), version.id, "narrow")
        assert isinstance(activated, VersionRow)
        started = time.monotonic()
        # The one that activated follows the store like every other gateway.
        await asyncio.gather(seconds_until_refused(second), seconds_until_refused(first))
        elapsed = time.monotonic() - started
        # Well below the 5 s poll (with room for a loaded machine): NOTIFY brought it.
        assert elapsed < 2.0, f"applied after {elapsed:.2f}s"
        assert first.follower.applied == second.follower.applied == version.id
        forwarded = await first.ledger_total()
        for gateway in (first, second, first, second):
            assert await status(gateway, "/api/invoices", "rita@acme.test") == 403
        assert await first.ledger_total() == forwarded, "a refused request reached Ledger"

        applied = await second.events("rules-applied")  # one store: both gateways' records
        assert [(e["data"]["version"], e["data"]["before"]) for e in applied] == [
            (version.id, {"version": start})
        ] * 2
        (event,) = [
            e
            for e in await first.events("rules-activated")
            if e["data"]["after"]["version"] == version.id
        ]
        assert event["actor"] == "cli" and event["data"]["before"] == {"version": start}


async def test_sqlite_replicas_apply_an_activation_within_a_second(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as first:
        assert not first.follower.listening
        await activation_reaches_the_replica(first)


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    dsn = os.environ.get("GATEHOLD_TEST_PG_DSN")
    if not dsn:
        require_component("PostgreSQL", "set GATEHOLD_TEST_PG_DSN=postgresql://user@host/db")
    name = f"gatehold_rules_{secrets.token_hex(6)}"
    server = await asyncpg.connect(dsn)
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await server.close()


async def test_postgres_replicas_apply_an_activation_by_notify(tmp_path: Path, pg_dsn: str) -> None:
    assert NOTIFIED_POLL_SECONDS >= 5, "a fast poll would hide a missing NOTIFY"
    overrides: dict[str, Any] = {**ADMIN_MANAGED, "store": {"dsn": pg_dsn}}
    async with running_stack(tmp_path, follow=True, **overrides) as first:
        assert first.follower.listening
        await activation_reaches_the_replica(first)


async def test_a_request_begun_before_an_activation_keeps_its_version(tmp_path: Path) -> None:
    rules = DEMO_RULES.read_text() + SLOW_ROUTE
    managed = {"rules": {"path": "unused", "managed_by": "admin"}}
    async with (
        running_stack(tmp_path, rules_text=rules, follow=True, **managed) as first,
        replica(first) as second,
    ):
        alice = second.cookie("alice@acme.test")
        old = second.app[LIVE].current
        begun = asyncio.create_task(second.client.get("/slow?seconds=1.5", headers=alice))
        await first.ledger_reaches(1)
        version = await propose(first, DEMO_RULES.read_text())  # the slow route is gone
        assert isinstance(await lifecycle.activate_version(context(first), version.id), VersionRow)
        await until(lambda: second.follower.applied == version.id, "the replica applies it")
        assert second.app[LIVE].current is not old

        after = await second.client.get("/slow?seconds=0", headers=alice)
        assert after.status == 404
        assert (await after.json())["type"] == "/.gatehold/problems/route-not-found"
        assert await first.ledger_total() == 1, "a request refused by the new rules was forwarded"

        first_answer = await begun
        assert first_answer.status == 200, await first_answer.text()
        assert await first_answer.json() == {"slept": True}
        rows = await second.audit_rows(first_answer.headers["X-Request-Id"])
        assert rows[0]["decision"] == "allow" and rows[0]["route"] == "slow"


async def test_a_version_this_process_cannot_compile_keeps_the_running_rules(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        engine, running = stack.app[ENGINE], stack.follower.applied
        unset = NARROWED.replace("${LEDGER_URL:-http://127.0.0.1:9001}", "${NOT_SET_HERE}")
        broken = await version_store.add_version(
            engine, unset, author="elsewhere", comment="", now=time.time()
        )
        assert await version_store.activate(engine, broken.id, by="elsewhere", now=time.time())
        await until(lambda: stack.events("rules-rejected"), "the broken version is rejected")
        await asyncio.sleep(1.2)  # a few more polls: tried once, not in a loop
        (rejected,) = await stack.events("rules-rejected")
        assert rejected["data"]["version"] == broken.id
        assert any("NOT_SET_HERE" in problem for problem in rejected["data"]["problems"])
        assert stack.follower.applied == running
        assert await status(stack, "/api/invoices", "rita@acme.test") == 200

        fixed = await propose(stack, NARROWED)
        assert isinstance(await lifecycle.activate_version(context(stack), fixed.id), VersionRow)
        await until(lambda: stack.follower.applied == fixed.id, "the fixed version applies")
        assert await status(stack, "/api/invoices", "rita@acme.test") == 403
