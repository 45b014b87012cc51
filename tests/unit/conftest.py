"""Fixtures shared by the unit tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest


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
