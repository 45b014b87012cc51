"""How often a sign-in link may be asked for: per client and per address, in the store.

Every worker and replica counts in the one store they share (``store.rate_limits``),
so the limits hold in total however requests are spread over them, not once per
process.

Fail closed: when the store cannot count a request, no link is asked for and the
requester is told that sign-in is unavailable for now. A link could not be stored (nor
the address looked up) without the store anyway, so this refuses nobody who could have
signed in; counting in this process instead would hand an attacker who can make the
store stumble each replica's full allowance. The answer depends only on the store's
health, never on the address, so it reveals nothing about accounts.

The store keeps keyed digests (HMAC-SHA-256) of the addresses and emails, never the
values. A plain hash would not hide them from someone who can read the database: every
IPv4 address, and every email in the users table next to it, is hashed in seconds and
matched. The key is derived from a secret every replica already shares and keeps
outside the database (``app.build_auth_pages``); a reader of the store learns how many
keys were counted, not whose.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry
from gateway.config.settings import MagicLinkSettings
from gateway.errors import StoreUnavailable
from gateway.store import rate_limits
from gateway.store.rate_limits import Limit, SweepTimer

log = logging.getLogger("gatehold.magic_link")
HOUR = 3600.0
UNAVAILABLE_RETRY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The store could not count the request: no link is asked for (fail closed)."""

    retry_after: int = UNAVAILABLE_RETRY_SECONDS


def limit_key(shared_secret: bytes) -> bytes:
    """The key of the limits' digests, derived from a secret the replicas share."""
    return hmac.new(shared_secret, b"gatehold sign-in rate limits", hashlib.sha256).digest()


class SignInLimits:
    """Sliding one-hour windows per client address and per email address, shared."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: MagicLinkSettings,
        *,
        key: bytes,
        audit: AuditWriter,
        window: float = HOUR,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._key = key
        self._audit = audit
        self._window = window
        self._clock = clock
        self._sweeps = SweepTimer()

    async def admit(self, address: str, *, client_ip: str) -> int | Unavailable:
        """0 if a link may be asked for ``address`` now (counted), else seconds to wait.

        The client is counted first: a client over its limit does not use up the
        address's allowance; a refused address still costs the client one.
        """
        now = self._clock()
        limits = (
            self._limit("client", client_ip, self._settings.per_client_per_hour),
            self._limit("email", address, self._settings.per_email_per_hour),
        )
        try:
            wait = await rate_limits.take(
                self._engine, limits, now=now, sweep=self._sweeps.due(now)
            )
        except StoreUnavailable as error:
            log.warning("sign-in link refused: the store cannot count requests (%s)", error)
            return Unavailable()
        if wait:
            self._audit.record(event_entry("magic-link-throttled", actor=address, client=client_ip))
            return int(wait) + 1
        return 0

    def _limit(self, kind: str, key: str, per_window: int) -> Limit:
        bucket = rate_limits.digest(f"magic-link-{kind}", key, secret=self._key)
        return Limit(bucket, per_window, self._window)
