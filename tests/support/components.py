"""A missing test component skips locally but fails in CI (GATEHOLD_REQUIRE_ALL=1)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def require_component(name: str, why: str) -> NoReturn:
    message = f"component {name} missing: {why}"
    if os.environ.get("GATEHOLD_REQUIRE_ALL") == "1":
        pytest.fail(f"{message}; CI requires every component")
    pytest.skip(message)
