"""Local secret keys (CSRF, sealed cookies): random, created once with mode 0600.

Several replicas must share them: point ``data_dir`` at shared storage or provision the
files before start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path, *, size: int = 32) -> bytes:
    """The secret in ``path``, created (0600) with ``size`` random bytes if missing."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(size)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
    return secret


class CsrfTokens:
    """CSRF tokens bound to one session: HMAC of the session hash."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, session_hash: str) -> str:
        return hmac.new(self._secret, session_hash.encode(), hashlib.sha256).hexdigest()

    def valid(self, session_hash: str, candidate: str) -> bool:
        return hmac.compare_digest(self.token(session_hash), candidate)
