"""Waiting for a state instead of for a fixed time.

A test that sleeps "long enough" for something to happen (a request to reach the
upstream, a poll to run, a connection to be counted) fails on a loaded machine, where
it has not happened yet; and it waits the full time on an idle one. ``until`` asks for
the state itself, often, and gives up only after a deadline far beyond the usual wait,
saying what never happened.

Sleeps whose time is the point of the test (a TTL or an idle timeout passing, a
trickle's pace, time for something that must *not* happen) stay sleeps.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

Condition = Callable[[], object]
"""A function or coroutine function whose result's truth is the state waited for."""


async def until(
    condition: Condition, what: str, *, timeout: float = 10.0, every: float = 0.02
) -> None:
    """Return once ``condition()`` (a function or a coroutine function) is true; fail
    saying ``what`` never happened if it is still false after ``timeout`` seconds."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        if not deadline.expired():  # the condition's own time-out: not ours to rename
            raise
        raise AssertionError(f"not within {timeout:g} s: {what}") from None
