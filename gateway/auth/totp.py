"""Authenticator-app codes (RFC 6238 TOTP) as a second factor.

What every app supports: a 160-bit secret, 6 digits, 30-second steps, HMAC-SHA-1.
A code is accepted for the current step or one step either side (clocks drift), and
only for a step later than the newest one accepted before: a code cannot serve twice,
nor an older code after a newer one (``gateway.store.totp.use_step``).

The secret is sealed (Fernet: AES-128-CBC + HMAC-SHA-256) with a key in
``<data_dir>/keys/totp.key``, so a copy of the database alone does not yield anyone's
codes. ``gatehold backup`` carries that key with the others; a store restored without
it cannot check codes (people then remove and set up their app again).

Setting up an app does not touch the store until it is confirmed: the candidate secret
travels in the set-up form, sealed and bound to the person and to what it is for, and
becomes the person's authenticator only with a correct code. Until then the old app
(if any) keeps working, and a set-up left half-way is no factor at all.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import segno
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.keys import fernet_of
from gateway.store import totp as totp_store

DIGITS = 6
PERIOD = 30
WINDOW = 1
"""Steps accepted either side of the current one."""
SECRET_CHARS = 32
"""Base-32 characters of a new secret: 32 x 5 = 160 bits (RFC 4226's recommendation)."""
SETUP_LIFETIME = 15 * 60
"""Seconds a set-up form (its sealed candidate secret) stays usable."""


class SecretSeal:
    """Seals secrets for the store and set-up forms with one key (Fernet)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = fernet_of(key, "TOTP sealing")

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(json.dumps({"totp": secret}).encode()).decode()

    def open(self, sealed: str) -> str | None:
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            return None
        secret = data.get("totp") if isinstance(data, dict) else None
        return secret if isinstance(secret, str) else None

    def seal_for(self, value: str, *, user_id: int, purpose: str, now: float) -> str:
        """``value`` for a form (a set-up's candidate secret), usable only by ``user_id``
        for ``purpose`` and for ``SETUP_LIFETIME`` seconds."""
        payload = {"value": value, "user": user_id, "purpose": purpose}
        return self._fernet.encrypt_at_time(json.dumps(payload).encode(), int(now)).decode()

    def open_for(self, sealed: str, *, user_id: int, purpose: str, now: float) -> str | None:
        """What ``seal_for`` sealed, unless forged, expired, or meant for someone or
        something else."""
        try:
            data = json.loads(
                self._fernet.decrypt_at_time(sealed.encode(), SETUP_LIFETIME, int(now))
            )
        except (InvalidToken, ValueError):
            return None
        if not isinstance(data, dict) or data.get("user") != user_id:
            return None
        if data.get("purpose") != purpose or not isinstance(data.get("value"), str):
            return None
        return str(data["value"])


def new_secret() -> str:
    return pyotp.random_base32(SECRET_CHARS)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)


def step_at(now: float) -> int:
    return int(now) // PERIOD


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The step within the window whose code ``code`` is, or ``None``."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret)
    current = step_at(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # the latest matching step wins; every step is compared
    return found


def provisioning_uri(secret: str, *, email: str, issuer: str) -> str:
    """The ``otpauth://`` URI an app scans: issuer and account named, defaults spelt out."""
    return _totp(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no image request: the pages' CSP allows none)."""
    return str(
        segno.make(uri, error="m").svg_inline(
            scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"
        )
    )


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@dataclass(frozen=True, slots=True)
class Setup:
    """What a set-up page shows: the QR code, the secret to type, the sealed candidate."""

    qr: str
    secret_text: str
    sealed: str


@dataclass
class Authenticators:
    """People's authenticator apps: set up, confirm, check a code, remove."""

    engine: AsyncEngine
    seal: SecretSeal
    issuer: str
    clock: Callable[[], float] = time.time

    def setup(self, *, user_id: int, email: str, purpose: str, secret: str | None = None) -> Setup:
        """A set-up page for a new candidate secret (or ``secret`` again, after a wrong
        confirming code); nothing is stored yet."""
        secret = secret or new_secret()
        uri = provisioning_uri(secret, email=email, issuer=self.issuer)
        return Setup(
            qr_svg(uri),
            grouped(secret),
            self.seal.seal_for(secret, user_id=user_id, purpose=purpose, now=self.clock()),
        )

    def candidate(self, sealed: str, *, user_id: int, purpose: str) -> str | None:
        return self.seal.open_for(sealed, user_id=user_id, purpose=purpose, now=self.clock())

    async def confirm(self, user_id: int, secret: str, code: str) -> bool:
        """Make ``secret`` the person's authenticator if ``code`` is a current code of it."""
        now = self.clock()
        step = matching_step(secret, code, now)
        if step is None:
            return False
        await totp_store.confirm_authenticator(
            self.engine, user_id, sealed_secret=self.seal.seal(secret), step=step, now=now
        )
        return True

    async def verify(self, user_id: int, code: str) -> bool:
        """Whether ``code`` is a current, unused code of the person's authenticator.

        An accepted code moves the person's ``last_step`` in the same statement that
        checks it, so that code (and any older one) is refused from then on.
        """
        stored = await totp_store.authenticator_of(self.engine, user_id)
        if stored is None:
            return False
        secret = self.seal.open(stored.sealed_secret)
        if secret is None:
            return False
        step = matching_step(secret, code, self.clock())
        if step is None:
            return False
        return await totp_store.use_step(self.engine, user_id, step)

    async def remove(self, user_id: int) -> bool:
        return await totp_store.remove_authenticator(self.engine, user_id)
