"""The store fixture itself: each PostgreSQL test really works in a schema of its own.

A ``search_path`` set inside the driver's implicit transaction is undone by the first
rollback; every test would then share ``public`` and see the others' rows.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.store import users
from tests.support.store_backends import StoreUnderTest


@pytest.mark.parametrize("store_under_test", ["postgresql"], indirect=True)
async def test_every_connection_stays_in_the_tests_own_schema(
    store_under_test: StoreUnderTest,
) -> None:
    engine = store_under_test.engine
    await users.add_user(engine, "a@acme.test", memberships=[])
    where = text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'users'")
    async with engine.connect() as conn:
        await conn.rollback()
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        tables = (await conn.execute(where)).scalars().all()
    assert schema == store_under_test.schema
    assert tables == [store_under_test.schema], "the tables were made outside the test's schema"
