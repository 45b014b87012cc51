"""Exceptions, for broken infrastructure only.

Expected outcomes (a refused request, a bad cookie) are values: ``model.Rejection`` and
``model.Decision``. Exceptions mean something the request cannot fix, or a limit hit
in the middle of a body stream, where no value can be returned::

    GateholdError
    ├── ConfigError          settings or rules are invalid (lists every problem)
    ├── StoreUnavailable     the database cannot read or commit        → 503
    ├── UpstreamFailed       the app behind did not answer properly    → 502 / 504
    ├── ScannerUnavailable   the virus scanner gave no verdict          → 503 (or let through)
    └── BodyLimit            a request body broke its route's limits
        ├── BodyTooLarge     more bytes than the route's ``max_body``   → 413
        └── BodyStalled      it paused too long or missed its deadline → 408

``body_stream.RequestBody`` raises the ``BodyLimit`` kinds; ``bodies.read_body`` and the
forwarder turn them into ``Rejection`` values.
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
    """The upstream refused the connection (``timeout=False``), was too slow, or
    answered with something that is not HTTP (``invalid``: a garbage status line, a
    malformed or oversized header)."""

    def __init__(
        self, upstream: str, *, timeout: bool, detail: str = "", invalid: bool = False
    ) -> None:
        self.upstream = upstream
        self.timeout = timeout
        self.invalid = invalid
        super().__init__(f"upstream {upstream!r} {'timed out' if timeout else 'failed'}: {detail}")


class ScannerUnavailable(GateholdError):
    """The virus scanner could not be reached or gave no verdict on a file."""


class BodyLimit(GateholdError):
    """A request body broke one of its route's limits while it was being read."""


class BodyTooLarge(BodyLimit):
    """The request body exceeds the route's ``max_body``."""


class BodyStalled(BodyLimit):
    """The client stopped sending its body (pause too long, or past the deadline)."""
