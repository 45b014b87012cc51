"""Times as the admin pages show them: UTC, to the minute, and as ISO 8601 for ``<time>``."""

from __future__ import annotations

from datetime import UTC, datetime


def shown_time(seconds: float | None, *, never: str = "never") -> str:
    """``2026-11-29 04:10 UTC`` for Unix ``seconds``; ``never`` for ``None``."""
    if seconds is None:
        return never
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_time(seconds: float) -> str:
    """The machine-readable form (a ``<time datetime>`` attribute)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
