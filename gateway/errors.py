"""Exceptions, for broken infrastructure only.

Expected outcomes (a refused request, a bad cookie) are values: ``model.Rejection`` and
``model.Decision``. Exceptions mean something the request cannot fix::

    GateholdError
    ├── ConfigError          settings or rules are invalid (lists every problem)
    ├── StoreUnavailable     the database cannot read or commit        → 503
    └── UpstreamFailed       the app behind did not answer properly    → 502 / 504
"""

from __future__ import annotations

from collections.abc import Sequence


class GateholdError(Exception):
    """Base of every Gatehold exception."""


class ConfigError(GateholdError):
    """Invalid configuration; ``problems`` holds one actionable line per error."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StoreUnavailable(GateholdError):
    """The store could not read or durably commit."""


class UpstreamFailed(GateholdError):
    """The upstream refused the connection (``timeout=False``) or was too slow."""

    def __init__(self, upstream: str, *, timeout: bool, detail: str = "") -> None:
        self.upstream = upstream
        self.timeout = timeout
        super().__init__(f"upstream {upstream!r} {'timed out' if timeout else 'failed'}: {detail}")
