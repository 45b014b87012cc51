"""Argon2id hashing off the event loop, and password tries throttled in the shared store.

The throttle tests run two throttles on two engines over one database (two replicas),
on a SQLite file and on a PostgreSQL database of their own.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.passwords import Attempt, PasswordHashing, PasswordThrottle, Throttled
from gateway.auth.sign_in_limits import Unavailable, limit_key
from gateway.config.settings import Argon2Settings, PasswordSettings
from gateway.store import password_attempts
from gateway.store.engine import open_engine
from gateway.store.password_attempts import Backoff
from tests.support.shared_store import BACKENDS, two_replicas

CHEAP = Argon2Settings(time_cost=1, memory_cost=8192, parallelism=1)
KEY = limit_key(b"the csrf secret every replica shares")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ hashing


async def test_hashes_are_argon2id_with_the_settings_parameters() -> None:
    hashing = PasswordHashing(Argon2Settings(time_cost=2, memory_cost=9216, parallelism=2))
    stored = await hashing.hash("Blue kettles argue quietly")
    assert stored.startswith("$argon2id$v=19$m=9216,t=2,p=2$")
    assert await hashing.verify(stored, "Blue kettles argue quietly")
    assert not await hashing.verify(stored, "blue kettles argue quietly")


async def test_passwords_are_compared_in_nfkc_form() -> None:
    hashing = PasswordHashing(CHEAP)
    stored = await hashing.hash("ｋｅｔｔｌｅ harbour ﬁne")  # full-width letters, a ligature
    assert await hashing.verify(stored, "kettle harbour fine")
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, "ｋｅｔｔｌｅ harbour ﬁne")  # stored normalized


async def test_no_stored_hash_costs_a_verify_and_never_matches() -> None:
    """The dummy is made with the settings' parameters, so verifying it is real work.

    (The answer-time comparison under load is ``tests/integration/test_passwords.py``;
    here only that the dummy is not free, which a shared CI machine cannot blur.)
    """
    settings = Argon2Settings(time_cost=2, memory_cost=32768, parallelism=1)
    hashing = PasswordHashing(settings)
    stored = await hashing.hash("right one, long enough")
    assert stored.split("$")[3] == hashing._dummy.split("$")[3] == "m=32768,t=2,p=1"
    timings: dict[str, list[float]] = {"real": [], "dummy": []}
    for _ in range(5):
        for kind, target in (("real", stored), ("dummy", None)):
            started = time.perf_counter()
            matched = await hashing.verify(target, "no password: the same work as a real one")
            timings[kind].append(time.perf_counter() - started)
            assert not matched, "a missing hash never matches, even the dummy's own password"
    real, dummy = (statistics.median(timings[kind]) for kind in ("real", "dummy"))
    assert dummy > 0.3 * real, timings


async def test_a_changed_parameter_asks_for_a_rehash() -> None:
    old = await PasswordHashing(CHEAP).hash("kettle harbour fine")
    assert not PasswordHashing(CHEAP).needs_rehash(old)
    assert PasswordHashing(Argon2Settings(time_cost=2, memory_cost=8192)).needs_rehash(old)
    assert PasswordHashing(Argon2Settings(time_cost=1, memory_cost=16384)).needs_rehash(old)


async def test_a_64_mib_hash_does_not_block_the_event_loop() -> None:
    hashing = PasswordHashing(Argon2Settings())  # the defaults: 64 MiB, three passes
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await hashing.hash("kettle harbour fine")
    took = time.perf_counter() - started
    ticker.cancel()
    assert took > 0.05, "the default parameters should cost real time"
    # Run on the loop, the hash would allow no tick at all while it ran; in a thread the
    # loop ticks on (fewer than ideal on a loaded machine, but many).
    assert ticks >= 5, (ticks, took)


async def test_a_corrupt_stored_hash_matches_nothing() -> None:
    assert not await PasswordHashing(CHEAP).verify("$argon2id$garbage", "anything at all")


# ------------------------------------------------------------------ back-off


@pytest.mark.parametrize(
    ("tries", "wait"),
    [(0, 0.0), (4, 0.0), (5, 1.0), (6, 2.0), (7, 4.0), (10, 32.0), (15, 900.0), (500, 900.0)],
    ids=lambda v: str(v),
)
def test_the_wait_doubles_after_the_free_tries_up_to_the_cap(tries: int, wait: float) -> None:
    assert Backoff(free=5, base=1.0, cap=900.0, memory=86400.0).wait_after(tries) == wait


@pytest.fixture(params=BACKENDS)
async def engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with two_replicas(request.param, tmp_path) as pair:
        yield pair


def throttles(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock
) -> tuple[PasswordThrottle, PasswordThrottle]:
    settings = PasswordSettings(free_failures=3, backoff_base="2s", backoff_max="30s")
    a, b = (PasswordThrottle(engine, settings, key=KEY, clock=clock) for engine in engines)
    return a, b


async def test_waits_grow_per_account_on_both_replicas_and_end(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = throttles(engines, clock)
    for i in range(3):  # the free tries, spread over both replicas
        assert isinstance(
            await (a, b)[i % 2].begin("carol@acme.test", client=f"10.0.0.{i}"), Attempt
        )
    waits = []
    for i in range(5):
        refused = await (b, a)[i % 2].begin("carol@acme.test", client=f"10.0.1.{i}")
        assert isinstance(refused, Throttled), "the other replica counted the same tries"
        waits.append(refused.retry_after)
        clock.now += refused.retry_after
        assert isinstance(await a.begin("carol@acme.test", client=f"10.0.2.{i}"), Attempt)
    assert waits == [2, 4, 8, 16, 30], "doubling from backoff_base, capped at backoff_max"
    assert isinstance(await a.begin("dave@acme.test", client="10.9.9.9"), Attempt), (
        "another account is not throttled"
    )


async def test_a_throttled_try_is_not_counted_so_the_wait_does_not_grow(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, _ = throttles(engines, clock)
    for _ in range(4):
        await a.begin("carol@acme.test", client="10.0.0.1")
    first = await a.begin("carol@acme.test", client="10.0.0.1")
    for _ in range(20):
        again = await a.begin("carol@acme.test", client="10.0.0.2")
        assert again == first


async def test_one_client_spraying_many_accounts_is_throttled(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = throttles(engines, clock)
    for i in range(3):
        assert isinstance(
            await (a, b)[i % 2].begin(f"user{i}@acme.test", client="198.51.100.7"), Attempt
        )
    refused = await b.begin("user9@acme.test", client="198.51.100.7")
    assert refused == Throttled(2)
    assert isinstance(await b.begin("user9@acme.test", client="198.51.100.8"), Attempt)


async def test_a_right_password_clears_the_accounts_tries_and_its_own_client_try(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = throttles(engines, clock)
    for _ in range(2):
        await a.begin("carol@acme.test", client="10.0.0.1")
    right = await a.begin("carol@acme.test", client="10.0.0.1")
    assert isinstance(right, Attempt)
    await b.succeeded(right)
    now = clock.now
    assert await password_attempts.remembered(engines[1], right.account, now=now) == 0
    assert await password_attempts.remembered(engines[1], right.client, now=now) == 2


async def test_concurrent_tries_at_the_end_of_a_wait_get_one_try(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    clock = Clock()
    a, b = throttles(engines, clock)
    for _ in range(3):
        await a.begin("carol@acme.test", client="10.0.0.1")
    clock.now += 2
    answers = await asyncio.gather(
        *((a, b)[i % 2].begin("carol@acme.test", client=f"10.1.0.{i}") for i in range(10))
    )
    assert sum(isinstance(answer, Attempt) for answer in answers) == 1


async def test_tries_are_forgotten_after_a_day(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    clock = Clock()
    a, _ = throttles(engines, clock)
    for _ in range(6):
        clock.now += 60
        await a.begin("carol@acme.test", client="10.0.0.1")
    clock.now += 24 * 3600
    assert isinstance(await a.begin("carol@acme.test", client="10.0.0.1"), Attempt)


async def test_the_store_keeps_digests_never_addresses(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    from sqlalchemy import text

    a, _ = throttles(engines, Clock())
    await a.begin("carol@acme.test", client="203.0.113.5")
    async with engines[0].connect() as conn:
        rows = [
            tuple(r) for r in await conn.execute(text("SELECT bucket, item FROM rate_limit_hits"))
        ]
    assert len(rows) == 2
    flat = " ".join(" ".join(r) for r in rows)
    assert "carol" not in flat and "203.0.113.5" not in flat
    assert all(len(bucket) == 64 for bucket, _ in rows)


async def test_a_store_that_cannot_count_refuses_every_address_alike(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the store's folder should be\n")
    engine = open_engine(f"sqlite:///{tmp_path / 'blocked' / 'gatehold.db'}")
    try:
        throttle = PasswordThrottle(engine, PasswordSettings(), key=KEY)
        known = await throttle.begin("alice@acme.test", client="192.0.2.1")
        unknown = await throttle.begin("nobody@acme.test", client="192.0.2.1")
    finally:
        await engine.dispose()
    assert known == unknown == Unavailable()
