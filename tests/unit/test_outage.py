"""A background task that keeps failing logs once per outage, not once per try."""

from __future__ import annotations

import logging

import pytest

from gateway.errors import StoreUnavailable
from gateway.outage import OutageNotice


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
