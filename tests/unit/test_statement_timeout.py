"""A PostgreSQL statement that does not answer in time fails as the store being down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.config.settings import load_settings
from gateway.errors import StoreUnavailable
from gateway.store.engine import open_engine, reading
from tests.support.postgres import create_database, database_dsn, drop_database


async def test_a_statement_past_the_timeout_is_store_unavailable_and_the_engine_goes_on() -> None:
    name = await create_database("timeout")
    engine = open_engine(database_dsn(name), statement_timeout=0.5)
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            async with reading(engine) as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - began < 3, "the statement was not cut at its timeout"
        async with reading(engine) as conn:  # the pool still serves
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
        await drop_database(name)


async def test_without_a_timeout_a_slow_statement_finishes() -> None:
    name = await create_database("timeout")
    engine = open_engine(database_dsn(name))
    try:
        async with reading(engine) as conn:
            await conn.execute(text("SELECT pg_sleep(1)"))
    finally:
        await engine.dispose()
        await drop_database(name)


def test_the_serving_timeout_defaults_to_30_seconds_and_0_turns_it_off(tmp_path: Path) -> None:
    config = tmp_path / "gatehold.yaml"
    config.write_text("store: {dsn: 'postgresql://gatehold@db/gatehold'}\n")
    assert load_settings(config, env={}, cwd=tmp_path).store_statement_timeout == 30
    config.write_text("store: {dsn: 'postgresql://gatehold@db/gatehold', statement_timeout: 0}\n")
    assert load_settings(config, env={}, cwd=tmp_path).store_statement_timeout == 0
