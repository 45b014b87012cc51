"""Recovery codes: ten single-use codes for when the authenticator app is not at hand.

A code is ten characters of Crockford's base-32 alphabet (digits and lower-case
letters without ``i l o u``): 50 random bits, shown grouped ``xxxxx-xxxxx``. Reading it
back forgives case, spaces and dashes, and the letters people confuse with digits
(``o`` → ``0``, ``i``/``l`` → ``1``), so a code copied from paper still works.

Codes are shown once, when made, and stored only as SHA-256 hashes. A slow password
hash is not needed here: a slow hash protects *guessable* secrets against an offline
search, and a random 50-bit code is not guessable — exhausting 2^50 SHA-256 hashes per
code (a separate search for each of ten codes per person, with the stored hash
useless to anyone who can already read the database's other secrets) costs far more
than the codes protect, while an online guess meets the sign-in's few attempts.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import recovery_codes as code_store

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
"""Crockford's base 32: 32 symbols, 5 bits each."""
LENGTH = 10
"""Characters per code: 10 x 5 = 50 random bits."""
COUNT = 10
"""Codes per set."""
_CONFUSED = str.maketrans({"o": "0", "i": "1", "l": "1"})
_IGNORED = str.maketrans("", "", " -\t\u00a0")


def new_code() -> str:
    """One random code, grouped for reading: ``xxxxx-xxxxx``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalized(code: str) -> str | None:
    """The code's canonical form, or ``None`` if it cannot be one of ours."""
    plain = code.strip().lower().translate(_IGNORED).translate(_CONFUSED)
    if len(plain) != LENGTH or any(c not in ALPHABET for c in plain):
        return None
    return plain


def code_hash(code: str) -> str:
    """SHA-256 of the canonical form (see the module's docstring for why not Argon2)."""
    return hashlib.sha256(b"gatehold-recovery-code:" + code.encode("ascii")).hexdigest()


@dataclass
class RecoveryCodes:
    """Makes and spends a person's recovery codes."""

    engine: AsyncEngine
    clock: Callable[[], float] = time.time

    async def make(self, user_id: int) -> list[str]:
        """A new set (the old one stops working); the only time the codes are seen."""
        codes: set[str] = set()
        while len(codes) < COUNT:
            codes.add(new_code())
        shown = sorted(codes)
        hashes = [code_hash(c.replace("-", "")) for c in shown]
        await code_store.replace_codes(self.engine, user_id, hashes, now=self.clock())
        return shown

    async def use(self, user_id: int, code: str) -> int | None:
        """Spend ``code``: how many codes are left, or ``None`` if it is not accepted."""
        plain = normalized(code)
        if plain is None:
            return None
        return await code_store.use_code(self.engine, user_id, code_hash(plain), now=self.clock())
