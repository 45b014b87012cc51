"""The audit key: a secret kept outside the store that keys the audit hash chain.

Someone who can write the database can rewrite a record and compute every hash after
it again, unless computing a hash needs something the database does not hold. Each row
therefore carries an HMAC-SHA256 under a key derived from this secret, and each
checkpoint (``gateway.audit_checkpoints``) an HMAC under a second derived key, so a
checkpoint signature can never pass for a row hash or the reverse.

The secret comes from the settings (``audit.key``, usually ``${VAR}`` from the
environment) or from a file (``audit.key_file``, default ``<data_dir>/keys/
audit-chain.key``), which the first process to need it creates with mode 0600 through
``gateway.auth.keys.load_or_create_key_file``, like every key file: several processes
starting at once agree on one key and none reads a half-written one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.auth.keys import load_or_create_key_file
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config.settings import Settings

MIN_SECRET_LENGTH = 32
"""Characters (bytes) a secret needs at least: 32 random hex digits are 128 bits."""


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The two keys derived from the audit secret. Never printed."""

    chain: bytes = field(repr=False)
    """Keys every row's hash."""
    checkpoint: bytes = field(repr=False)
    """Signs checkpoints written outside the database."""

    @classmethod
    def from_secret(cls, secret: bytes) -> AuditKey:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the audit secret needs at least {MIN_SECRET_LENGTH} characters")
        return cls(
            chain=_derive(secret, b"gatehold audit chain v1"),
            checkpoint=_derive(secret, b"gatehold audit checkpoint v1"),
        )


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.digest(secret, purpose, "sha256")


def load_key_file(path: Path, *, create: bool) -> AuditKey:
    """The key in ``path``; with ``create``, a new random one if the file does not exist.

    Raises ``ConfigError`` (one actionable line) when the file is missing and may not be
    created, unreadable, or too short.
    """
    try:
        if create:
            secret = load_or_create_key_file(path, _new_secret).strip()
        else:
            secret = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(
            [
                f"{path}: the audit key file does not exist; the audit chain cannot be checked "
                "without the key that wrote it (restore the file, or point audit.key_file "
                "at it)"
            ]
        ) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the audit key file: {error.strerror}"]) from None
    try:
        return AuditKey.from_secret(secret)
    except ValueError as error:
        raise ConfigError([f"{path}: {error}"]) from None


def key_from_text(secret: str, *, origin: str = "audit.key") -> AuditKey:
    """The key given as text in the settings (``${VAR}`` keeps it out of the file)."""
    try:
        return AuditKey.from_secret(secret.strip().encode("utf-8"))
    except ValueError as error:
        raise ConfigError([f"{origin}: {error}"]) from None


def _new_secret() -> bytes:
    """256 random bits as hex: readable, and safe to paste into an environment variable."""
    return (secrets.token_hex(32) + "\n").encode("ascii")


def audit_key(settings: Settings, *, create: bool) -> AuditKey:
    """The key the settings name: ``audit.key`` if set, else the key file.

    ``create`` makes a missing key file (writers); verification passes ``False``, since
    a new key could only call every existing record forged.
    """
    if settings.audit.key is not None:
        return key_from_text(settings.audit.key)
    return load_key_file(settings.audit_key_path, create=create)
