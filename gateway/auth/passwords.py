"""Local passwords (SPEC §4): Argon2id hashes, sign-in by password, throttled tries.

Hashing and verifying run in worker threads (``asyncio.to_thread``): a 64 MiB Argon2
hash takes a good part of a second of one core and must not stall the event loop. At
most ``HASH_SLOTS`` run at once, so a flood of tries queues instead of taking the
memory of a hundred hashes.

Every sign-in answer costs exactly one Argon2 verify: an address without an account,
or an account without a password, is verified against a dummy hash made at start with
the same parameters. Right or wrong, unknown or deactivated: the same work, the same
answer (``password_pages``). A stored hash made with other parameters than the
settings' is redone at the next successful sign-in.

Tries are throttled per account (a keyed digest of the address, whether or not it has
an account) and per client (``password_attempts``): after ``free_failures`` wrong ones
each further try waits twice as long as the one before, up to ``backoff_max``. The
wait always ends, and a person whose password tries are throttled can still sign in
with an email link: an attacker cannot lock the owner out. Counted in the store all
replicas share; when it cannot count, nobody tries (fail closed, ``Unavailable``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.magic_link import SignIn
from gateway.auth.password_policy import PasswordPolicy, normalize
from gateway.auth.sign_in_limits import Unavailable
from gateway.config.durations import parse_duration
from gateway.config.settings import Argon2Settings, PasswordSettings
from gateway.errors import StoreUnavailable
from gateway.store import password_attempts
from gateway.store import passwords as password_store
from gateway.store import users as user_store
from gateway.store.password_attempts import Backoff
from gateway.store.rate_limits import SweepTimer, digest

log = logging.getLogger("gatehold.passwords")
HASH_SLOTS = 4
FAILURE_MEMORY = 24 * 3600.0
"""How long a wrong try counts towards the wait (a right one clears the account's)."""
SET_PASSWORD_PATH = "/.gatehold/account/password"  # noqa: S105 - a path
FRESH_MAGIC_LINK = 15 * 60.0
"""A magic-link sign-in this recent may replace a password without the current one."""


class PasswordHashing:
    """Argon2id with the settings' cost, off the event loop."""

    def __init__(self, settings: Argon2Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost,
            parallelism=settings.parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(HASH_SLOTS)
        # Made now, with the same parameters: verifying it costs what a real verify costs.
        self._dummy = self._hasher.hash("no password: the same work as a real one")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, normalize(password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; a missing hash costs the same, fails."""
        async with self._slots:
            matched = await asyncio.to_thread(self._verify, stored or self._dummy, password)
        return matched and stored is not None

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, normalize(password))
        except InvalidHashError:
            log.error("a stored password hash is not an Argon2 hash; it matches nothing")
            return False
        except VerificationError:
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many tries lately, for this address or this client: wait, or use an email link."""

    retry_after: int


@dataclass(frozen=True, slots=True)
class Mismatch:
    """No sign-in; ``reason`` is for the audit only (the person sees one message)."""

    reason: str
    """``unknown-user``, ``no-password``, ``wrong-password`` or ``user-inactive``."""


@dataclass(frozen=True, slots=True)
class Matched:
    """The right password of an active account."""

    user_id: int
    email: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """A try counted before the password is checked (``password_attempts``)."""

    item: str
    account: str
    client: str


class PasswordThrottle:
    """Doubling waits per account and per client, counted in the shared store."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: PasswordSettings,
        *,
        key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._key = key
        self._clock = clock
        self._sweeps = SweepTimer()
        self.backoff = Backoff(
            free=settings.free_failures,
            base=parse_duration(settings.backoff_base),
            cap=parse_duration(settings.backoff_max),
            memory=FAILURE_MEMORY,
        )

    def account_bucket(self, email: str) -> str:
        return digest("password-email", email.strip().lower(), secret=self._key)

    def client_bucket(self, client: str) -> str:
        return digest("password-client", client, secret=self._key)

    async def begin(self, email: str, *, client: str) -> Attempt | Throttled | Unavailable:
        account, by_client = self.account_bucket(email), self.client_bucket(client)
        now = self._clock()
        try:
            began = await password_attempts.begin_try(
                self._engine,
                (by_client, account),
                self.backoff,
                now=now,
                sweep=self._sweeps.due(now),
            )
        except StoreUnavailable as error:
            log.warning("password try refused: the store cannot count tries (%s)", error)
            return Unavailable()
        if isinstance(began, float):
            return Throttled(max(1, math.ceil(began)))
        return Attempt(began, account, by_client)

    async def succeeded(self, attempt: Attempt) -> None:
        """The account's wrong tries are forgotten; the client keeps its other ones."""
        await password_attempts.succeeded(
            self._engine, item=attempt.item, cleared=(attempt.account,), kept=(attempt.client,)
        )


class Passwords:
    """Sign-in by password, and setting one; the pages are in ``password_pages``."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: PasswordSettings,
        *,
        hashing: PasswordHashing,
        throttle: PasswordThrottle,
        policy: PasswordPolicy,
        public_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.public_url = public_url
        self.engine = engine
        self.settings = settings
        self.hashing = hashing
        self.throttle = throttle
        self.policy = policy
        self.clock = clock

    async def sign_in(
        self, email: str, password: str, *, client: str
    ) -> Matched | Mismatch | Throttled | Unavailable:
        """Check ``password`` for the account of ``email`` (a valid address)."""
        attempt = await self.throttle.begin(email, client=client)
        if not isinstance(attempt, Attempt):
            return attempt
        found = await password_store.credentials_of(self.engine, email)
        stored = found.hash if found is not None else None
        matched = await self.hashing.verify(stored, password[: 4 * self.settings.max_length])
        if found is None or stored is None:
            return Mismatch("unknown-user" if found is None else "no-password")
        if not matched:
            return Mismatch("wrong-password")
        if not found.active:  # after the verify: the same work as any other answer
            return Mismatch("user-inactive")
        await self.throttle.succeeded(attempt)
        await self._rehash_if_needed(found.user_id, stored, password)
        return Matched(found.user_id, found.email)

    async def check_current(
        self, user_id: int, email: str, password: str, *, client: str
    ) -> bool | Throttled | Unavailable:
        """Whether ``password`` is the person's current one (a change form), throttled
        like a sign-in: a stolen session must not become a password oracle."""
        attempt = await self.throttle.begin(email, client=client)
        if not isinstance(attempt, Attempt):
            return attempt
        stored = await password_store.hash_of(self.engine, user_id)
        if not await self.hashing.verify(stored, password[: 4 * self.settings.max_length]):
            return False
        await self.throttle.succeeded(attempt)
        return True

    async def set_password(self, user_id: int, password: str) -> None:
        """Store a new password (already accepted by the policy)."""
        hashed = await self.hashing.hash(password)
        await password_store.store_hash(self.engine, user_id, hashed, now=self.clock())

    async def has_password(self, user_id: int) -> bool:
        return await password_store.hash_of(self.engine, user_id) is not None

    async def after_magic_link(self, who: SignIn) -> str:
        """Where a magic-link sign-in goes: first to choosing a password, for a person
        who has none (they may skip it), else straight to where they were going.

        A guest (a share link's recipient, holding no membership) is not asked: a
        password would outlive the one file they were sent."""
        if who.rd.startswith(SET_PASSWORD_PATH) or await self.has_password(who.user_id):
            return who.rd
        user = await user_store.get_user(self.engine, who.user_id)
        if user is None or not (user.memberships or user.superadmin):
            return who.rd
        return f"{SET_PASSWORD_PATH}?rd={quote(who.rd, safe='')}"

    async def _rehash_if_needed(self, user_id: int, stored: str, password: str) -> None:
        if not self.hashing.needs_rehash(stored):
            return
        renewed = await self.hashing.hash(password)
        if await password_store.replace_hash(self.engine, user_id, old=stored, new=renewed):
            log.info("a password hash was redone with the current Argon2 parameters")
