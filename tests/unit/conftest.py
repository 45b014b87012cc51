"""Fixtures shared by the unit tests.

``engine`` is the migrated store of ``store_engine`` (``tests/support/store_backends``):
every test that takes it runs on SQLite and on PostgreSQL. A module whose tests are
inherently one backend defines its own ``engine`` and says why.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
def engine(store_engine: AsyncEngine) -> AsyncEngine:
    """A migrated store of the test's own, on each backend in turn."""
    return store_engine


@pytest.fixture(autouse=True)
async def driver_threads_finish() -> AsyncIterator[None]:
    """Let aiosqlite threads of failed connections stop while the loop is still open.

    (aiosqlite does not await its own clean-up after a failed connect; its thread would
    otherwise report to a closed loop after the test.)
    """
    yield
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 2.0)
