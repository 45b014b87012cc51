"""Replicas agree on the rate limits: an attacker who spreads requests over them gains nothing.

Two real gateways (two app instances, each with its own caches and pollers) share one
store: a SQLite file, or a PostgreSQL database of the test's own. Magic-link requests
for one address sent to both are limited at the configured number in total, and no
mail goes out beyond it. An id guesser who alternates between the replicas is blocked
on both: the replica whose denial crossed the threshold at once and audits it, the
other within a second of that. Allowed traffic never reads or writes the limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.context import GATEWAY
from gateway.enumeration import POLL_SECONDS
from tests.integration.test_magic_link import ask_for_link, mail_settings
from tests.support.postgres import fresh_pg_engine
from tests.support.shared_store import BACKENDS
from tests.support.smtp import Inbox
from tests.support.stack import Stack, replica, running_stack

API = {"Accept": "application/json"}
GUESSING = {"enumeration": {"window": "60s", "slow_after": 2, "block_after": 4}}
LIMIT_TABLES = ("rate_limit_hits", "enumeration_blocks")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings overrides for the shared store (SQLite: the data folder's file)."""
    if request.param == "sqlite":
        yield {}
        return
    async with fresh_pg_engine("replicas") as engine:
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        yield {"store": {"dsn": dsn}}


async def status(stack: Stack, path: str, email: str) -> int:
    async with stack.client.get(path, headers=stack.cookie(email) | API) as answer:
        return answer.status


async def test_magic_links_asked_through_both_replicas_are_limited_in_total(
    tmp_path: Path, smtp_server: tuple[Inbox, int], store: dict[str, Any]
) -> None:
    inbox, port = smtp_server
    settings = {**store, **mail_settings(port, per_email_per_hour=3)}
    async with running_stack(tmp_path, follow=True, **settings) as a, replica(a) as b:
        answers = await asyncio.gather(
            *(ask_for_link((a, b)[i % 2], "alice@acme.test") for i in range(10))
        )
        statuses = sorted(answer.status for answer in answers)
        assert statuses == [200] * 3 + [429] * 7, "three in total, not three per replica"
        assert all(int(r.headers["Retry-After"]) > 3000 for r in answers if r.status == 429)
        for gateway in (a, b):
            await gateway.app[AUTH_PAGES].magic_links.wait_sent()
        await inbox.wait_for("alice@acme.test", count=3)
        await asyncio.sleep(0.2)
        assert len([m for m in inbox.messages if m["To"] == "alice@acme.test"]) == 3

        assert len(await a.events("magic-link-sent")) == 3
        throttled = await b.events("magic-link-throttled")  # one store: both replicas' events
        assert len(throttled) == 7 and {e["actor"] for e in throttled} == {"alice@acme.test"}
        other = await ask_for_link(b, "bob@globex.test")
        assert other.status == 200, "the limit is per address"


async def test_an_id_guesser_spreading_over_both_replicas_is_blocked_on_both(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    async with (
        running_stack(tmp_path, follow=True, policy=GUESSING, **store) as a,
        replica(a) as b,
    ):
        guesses = []
        for i, invoice in enumerate((2, 4, 6, 8)):  # globex's invoices: alice is guessing
            guesser = (a, b)[i % 2]
            headers = guesser.cookie("alice@acme.test") | API
            async with guesser.client.get(f"/api/invoices/{invoice}", headers=headers) as guess:
                guesses.append((guess.status, guess.headers["X-Request-Id"]))
        crossed = time.monotonic()
        assert [code for code, _ in guesses] == [404, 404, 404, 404]
        async with b.client.get("/api/invoices/7", headers=b.cookie("alice@acme.test") | API) as r:
            assert r.status == 429, "b counted a's denials too: its own invoice is refused"
            assert (await r.json())["type"].endswith("/enumeration-blocked")
        while await status(a, "/api/invoices/7", "alice@acme.test") != 429:
            assert time.monotonic() - crossed < 2.0, "a never learned b's block"
            await asyncio.sleep(0.02)
        learned = time.monotonic() - crossed
        print(f"the other replica refused the guesser {learned * 1000:.0f} ms after the block")
        assert learned < 1.0

        for gateway in (a, b):
            assert await status(gateway, "/api/invoices/8", "bob@globex.test") == 200
        reached = await a.ledger_hits()
        for _, request_id in guesses:
            assert request_id not in reached, "a guess reached Ledger"
            rows = await a.audit_rows(request_id)
            assert (rows[0]["decision"], rows[0]["reason"]) == ("deny", "tenant-foreign")
        (blocked,) = await a.events("enumeration-blocked")
        assert blocked["actor"] == "alice@acme.test" and blocked["data"]["distinct_ids"] == 4
        alerts = [
            "gatehold_enumeration_alerts_total 1.0" in g.app[GATEWAY].metrics.exposition().decode()
            for g in (a, b)
        ]
        assert alerts == [False, True], "raised once, by the replica that crossed the threshold"


async def test_allowed_requests_do_not_touch_the_limits(
    tmp_path: Path, store: dict[str, Any]
) -> None:
    async with (
        running_stack(tmp_path, follow=True, policy=GUESSING, **store) as a,
        replica(a) as b,
    ):
        seen = [statements_on_limits(g.app[ENGINE]) for g in (a, b)]
        started = time.monotonic()
        for i in range(60):
            assert await status((a, b)[i % 2], "/api/invoices/7", "alice@acme.test") == 200
        elapsed = time.monotonic() - started
        await asyncio.sleep(2 * POLL_SECONDS)
        for g in (a, b):  # one read of the blocks (PostgreSQL polls only every few seconds)
            await g.app[GATEWAY].enumeration.refresh()
        elapsed_with_polls = time.monotonic() - started
        for statements in seen:
            assert statements, "the read is seen: the listener watches the right engine"
            assert all(s.startswith("SELECT") and "enumeration_blocks" in s for s in statements)
            polls = elapsed_with_polls / POLL_SECONDS + 3
            assert len(statements) <= polls, f"{len(statements)} reads in {elapsed:.2f} s + polls"


def statements_on_limits(engine: AsyncEngine) -> list[str]:
    """Every statement ``engine`` sends from now on that names a rate-limit table."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if any(table in statement for table in LIMIT_TABLES):
            seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    return seen


async def test_when_the_store_cannot_count_every_address_gets_the_same_refusal(
    tmp_path: Path, smtp_server: tuple[Inbox, int], store: dict[str, Any]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **store, **mail_settings(port)) as stack:
        engine = stack.app[ENGINE]
        await rename(engine, "rate_limit_hits", "rate_limit_hits_away")  # counting fails
        try:
            answers = {}
            for email in ("alice@acme.test", "nobody@acme.test"):
                response = await ask_for_link(stack, email)
                answers[email] = (response.status, response.headers["Retry-After"])
                answers[email] += ((await response.text()).replace(email, "EMAIL"),)
        finally:
            await rename(engine, "rate_limit_hits_away", "rate_limit_hits")
        assert answers["alice@acme.test"] == answers["nobody@acme.test"]
        status_code, retry_after, body = answers["alice@acme.test"]
        assert (status_code, retry_after) == (503, "30")
        assert "Sign-in links cannot be sent right now" in body
        await stack.app[AUTH_PAGES].magic_links.wait_sent()
        assert inbox.messages == [], "nothing was looked up or sent"

        for _ in range(3):  # a pooled connection may still hold a plan for the old table
            if (await ask_for_link(stack, "alice@acme.test")).status == 200:
                break
        else:
            raise AssertionError("sign-in did not come back with the store")
        await inbox.wait_for("alice@acme.test")


async def rename(engine: AsyncEngine, table: str, to: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))
