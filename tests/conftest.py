"""Suite-wide settings: in CI (GATEHOLD_REQUIRE_ALL=1) a skipped test is a failure.

A missing component (Chromium, an OpenID Provider, PostgreSQL) must never turn a
security test silently green.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

REQUIRE_ALL = os.environ.get("GATEHOLD_REQUIRE_ALL") == "1"
pytest_plugins = ["tests.support.smtp", "tests.support.store_backends"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, but GATEHOLD_REQUIRE_ALL=1 requires every component: {report.longrepr}"
        )
    return report
