"""Local key files (assertion signing key, CSRF, sealed cookies): created once, 0600.

Several replicas must share them: point ``data_dir`` at shared storage or provision the
files before start. Workers that start together on an empty folder agree on one key
(``load_or_create_key_file``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from gateway.errors import ConfigError

ASSERTION_KEY = "assertion-es256.pem"
CSRF_KEY = "csrf.key"
OIDC_FLOW_KEY = "oidc-flow.key"
TOTP_KEY = "totp.key"
"""Seals authenticator-app secrets in the store: lose it and every app must be set up again."""
MAIL_KEY = "mail.key"
"""Seals messages waiting in the mail outbox (they hold sign-in links): lose it and the
messages waiting then are dropped undelivered (people ask again)."""
SECRET_FILES = (CSRF_KEY, OIDC_FLOW_KEY, TOTP_KEY, MAIL_KEY)
"""Files under ``<data_dir>/keys``: the assertion signing key (unless
``assertion.key_file`` names another) and these secrets. All are created once, by
``load_or_create_key_file``."""


def load_or_create_key_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes in ``path``; if there is no such file yet, ``make()``'s, published atomically.

    Several workers may start at once on an empty data folder. Each writes its candidate
    to a private temporary file (0600, flushed to disk) and publishes it with
    ``os.link``, which fails when the name already exists: the name only ever appears
    with complete content, exactly one candidate wins, and every other process reads the
    winner's. A key file that exists but is empty is refused, never used.
    """
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            content = make()
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process published its key first
            return _read_key_file(path)
        except OSError as error:
            raise ConfigError(
                [
                    f"{path}: could not create the key file ({error.strerror}); its folder "
                    "must be writable and support hard links: put data_dir on a local file "
                    "system, or provision the key files before starting"
                ]
            ) from None
    finally:
        os.unlink(temporary)
    return content


def _read_key_file(path: Path) -> bytes:
    content = path.read_bytes()
    if not content:
        raise ConfigError(
            [
                f"{path}: the key file is empty (a start was interrupted while writing it?): "
                "restore it from a backup, or delete it to create a new key (sessions' CSRF "
                "tokens, sign-ins in progress or assertions signed with the old key stop "
                "being accepted)"
            ]
        )
    return content


def load_or_create_secret(path: Path, *, size: int = 32) -> bytes:
    """The secret in ``path``, created (0600) with ``size`` random bytes if missing."""
    return load_or_create_key_file(path, lambda: secrets.token_bytes(size))


class CsrfTokens:
    """CSRF tokens bound to one session: HMAC of the session hash."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, session_hash: str) -> str:
        return hmac.new(self._secret, session_hash.encode(), hashlib.sha256).hexdigest()

    def valid(self, session_hash: str, candidate: str) -> bool:
        return hmac.compare_digest(self.token(session_hash), candidate)


def fernet_of(key: bytes, what: str) -> Fernet:
    """A Fernet (AES-128-CBC + HMAC-SHA-256) keyed by the first 32 bytes of ``key``.

    Every sealed value of the gateway (sign-in flows, TOTP secrets, queued mail) uses
    one of these, each with a key file of its own.
    """
    if len(key) < 32:
        raise ValueError(f"the {what} key must be at least 32 bytes")
    return Fernet(base64.urlsafe_b64encode(key[:32]))
