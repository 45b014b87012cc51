"""A background task that keeps failing logs once per outage, not once per try."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.errors import StoreUnavailable
from gateway.outage import OutageNotice, poll_store


def test_one_warning_per_outage_and_one_line_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("gatehold.test-outage")
    notice = OutageNotice(log, "poll: cannot read", "poll: reads again")
    with caplog.at_level(logging.INFO, logger=log.name):
        notice.worked()  # nothing was wrong: nothing to say
        for attempt in range(50):
            notice.failed(StoreUnavailable(f"down {attempt}"))
        notice.worked()
        notice.worked()
        notice.failed(StoreUnavailable("down again"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "poll: cannot read: down 0"),
        ("INFO", "poll: reads again"),
        ("WARNING", "poll: cannot read: down again"),
    ]
    assert notice.ongoing


async def test_poll_store_runs_on_wake_and_on_time_and_outlives_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("gatehold.test-outage")
    wake = asyncio.Event()
    answers = iter([StoreUnavailable("down"), StoreUnavailable("down"), None, None])
    steps: list[str] = []

    async def step() -> None:
        answer = next(answers, None)
        steps.append("failed" if answer else "ran")
        if answer:
            raise answer

    outage = OutageNotice(log, "poll: cannot read", "poll: reads again")
    with caplog.at_level(logging.INFO, logger=log.name):
        task = asyncio.create_task(
            poll_store(step, wake=wake, interval=lambda: 0.01, outage=outage)
        )
        while len(steps) < 4:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert steps[:4] == ["failed", "failed", "ran", "ran"]
    assert [r.getMessage() for r in caplog.records] == [
        "poll: cannot read: down",
        "poll: reads again",
    ]
