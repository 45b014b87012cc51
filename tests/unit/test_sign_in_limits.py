"""Sign-in link limits hold across replicas: counted in the store they share.

Each test runs two limiters on two engines over one database (two replicas), on a
SQLite file and on a PostgreSQL database of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.auth.sign_in_limits import SignInLimits, Unavailable, limit_key
from gateway.config.settings import MagicLinkSettings
from gateway.store.engine import open_engine
from gateway.store.rate_limits import SWEEP_SECONDS
from tests.support.shared_store import BACKENDS, two_replicas

AUDIT_KEY = AuditKey.from_secret(b"unit-test audit secret, 32+ bytes long")
SHARED_SECRET = b"the csrf secret every replica shares"
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Replicas = tuple[SignInLimits, SignInLimits]


@pytest.fixture(params=BACKENDS)
async def engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with two_replicas(request.param, tmp_path) as pair:
        yield pair


def limiters(
    engines: tuple[AsyncEngine, AsyncEngine],
    clock: Clock,
    *,
    per_email: int,
    per_client: int = 1000,
) -> Replicas:
    settings = MagicLinkSettings(per_email_per_hour=per_email, per_client_per_hour=per_client)
    a, b = (
        SignInLimits(
            engine,
            settings,
            key=limit_key(SHARED_SECRET),
            audit=AuditWriter(engine, key=AUDIT_KEY),
            clock=clock,
        )
        for engine in engines
    )
    return a, b


async def stored_hits(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT bucket, item FROM rate_limit_hits"))
        return [(str(bucket), str(item)) for bucket, item in rows]


async def test_requests_split_across_replicas_count_together(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = limiters(engines, clock, per_email=5)
    answers = []
    for i in range(8):
        replica = (a, b)[i % 2]
        answers.append(await replica.admit("rita@acme.test", client_ip=f"192.0.2.{i}"))
        clock.now += 1
    assert answers[:5] == [0] * 5
    assert all(isinstance(w, int) and w > 0 for w in answers[5:]), answers
    assert await a.admit("bob@globex.test", client_ip="192.0.2.99") == 0, "another address"


async def test_the_limit_is_exact_when_both_replicas_race(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = limiters(engines, clock, per_email=7)
    answers = await asyncio.gather(
        *((a, b)[i % 2].admit("rita@acme.test", client_ip=f"192.0.2.{i}") for i in range(30))
    )
    assert answers.count(0) == 7, answers
    assert len(await stored_hits(engines[0])) == 30 + 7, "a hit per client, 7 for the address"


async def test_the_client_limit_is_shared_too(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    clock = Clock()
    a, b = limiters(engines, clock, per_email=1000, per_client=3)
    answers = await asyncio.gather(
        *((a, b)[i % 2].admit(f"person{i}@acme.test", client_ip="198.51.100.7") for i in range(9))
    )
    assert answers.count(0) == 3, answers


async def test_the_window_slides(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    clock = Clock()
    a, b = limiters(engines, clock, per_email=2)
    start = clock.now
    assert await a.admit("rita@acme.test", client_ip="192.0.2.1") == 0
    clock.now = start + 1000
    assert await b.admit("rita@acme.test", client_ip="192.0.2.1") == 0
    clock.now = start + 2000
    assert await a.admit("rita@acme.test", client_ip="192.0.2.1") == 1601, (
        "first hit leaves at 3600"
    )
    clock.now = start + HOUR + 1
    assert await b.admit("rita@acme.test", client_ip="192.0.2.1") == 0, "the first hit left"
    assert await a.admit("rita@acme.test", client_ip="192.0.2.1") == 1000, "the second at 4600"


async def test_old_hits_are_swept_and_no_key_is_stored_in_clear(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = limiters(engines, clock, per_email=5)
    for i in range(20):
        await (a, b)[i % 2].admit(f"person{i}@acme.test", client_ip=f"203.0.113.{i}")
    stored = await stored_hits(engines[0])
    assert len(stored) == 40
    text_stored = repr(stored)
    assert "acme" not in text_stored and "203.0.113" not in text_stored
    assert all(len(bucket) == 64 for bucket, _ in stored)

    clock.now += HOUR + SWEEP_SECONDS
    assert await a.admit("late@acme.test", client_ip="203.0.113.200") == 0
    assert len(await stored_hits(engines[1])) == 2, "only the new hits are left"


async def test_a_store_that_cannot_count_refuses_every_address_alike(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the store's folder should be\n")
    engine = open_engine(f"sqlite:///{tmp_path / 'blocked' / 'gatehold.db'}")
    try:
        limits = SignInLimits(
            engine,
            MagicLinkSettings(),
            key=limit_key(SHARED_SECRET),
            audit=AuditWriter(engine, key=AUDIT_KEY),
        )
        known = await limits.admit("alice@acme.test", client_ip="192.0.2.1")
        unknown = await limits.admit("nobody@acme.test", client_ip="192.0.2.1")
    finally:
        await engine.dispose()
    assert known == unknown == Unavailable()
