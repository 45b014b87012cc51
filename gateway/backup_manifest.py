"""What a backup folder holds, written last as ``manifest.json`` and checked on restore.

A backup is the store, the audit checkpoints and the key files, each with a role that
says where ``gatehold restore`` puts it back under the *restoring* host's settings
(another data folder, another database). The manifest also records where the audit
chain ends in the store copy, so an operator can compare it with ``audit verify``'s
view later, and a SHA-256 of every file, so a damaged or incomplete copy is refused
before anything is replaced. The hashes catch accidents, not attackers (who could
recompute them): ``audit verify`` after the restore is what finds tampering.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.config.settings import Settings

MANIFEST = "manifest.json"
FORMAT = 1


class Role(StrEnum):
    """What a file in a backup is, hence where it is restored to."""

    STORE = "store"
    CHECKPOINTS = "checkpoints"
    AUDIT_KEY = "audit-key"
    ASSERTION_KEY = "assertion-key"
    KEY = "key"
    """Another file of ``<data_dir>/keys`` (CSRF, sign-in flow secrets)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a backup or restore did not start (or stopped); nothing was changed."""

    problems: list[str]


@dataclass(frozen=True, slots=True)
class BackupFile:
    role: Role
    path: str
    """Relative to the backup folder."""
    sha256: str
    size: int

    @classmethod
    def of(cls, folder: Path, relative: str, role: Role) -> BackupFile:
        data = (folder / relative).read_bytes()
        return cls(role, relative, hashlib.sha256(data).hexdigest(), len(data))

    def damage(self, folder: Path) -> str | None:
        """Why the file in the backup ``folder`` is not the one backed up, or ``None``."""
        return self.damage_at(folder / self.path)

    def damage_at(self, path: Path) -> str | None:
        """Why ``path`` does not hold this file's content, or ``None``."""
        try:
            data = path.read_bytes()
        except OSError as error:
            return f"{path}: cannot be read ({error.strerror}); the backup is incomplete"
        if hashlib.sha256(data).hexdigest() != self.sha256:
            return f"{path}: its content differs from the manifest (damaged or altered copy)"
        return None


@dataclass(frozen=True, slots=True)
class Manifest:
    created: str
    """UTC, ISO 8601."""
    gatehold_version: str
    backend: str
    """``sqlite`` or ``postgresql``."""
    audit_last_seq: int
    """The last audit record in the store copy (the backup's own event included)."""
    audit_head_hash: str
    audit_key_included: bool
    """False when the settings give the key as text: it must be kept separately."""
    files: tuple[BackupFile, ...]

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "created": self.created,
            "gatehold_version": self.gatehold_version,
            "backend": self.backend,
            "audit": {
                "last_seq": self.audit_last_seq,
                "head_hash": self.audit_head_hash,
                "key_included": self.audit_key_included,
            },
            "files": [
                {"role": f.role.value, "path": f.path, "sha256": f.sha256, "bytes": f.size}
                for f in self.files
            ],
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest | str:
        """The manifest of the backup ``folder``, or why there is no usable one."""
        path = folder / MANIFEST
        try:
            document: Any = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != FORMAT:
                return f"{path}: manifest format {document.get('format')!r} is not {FORMAT}"
            audit = document["audit"]
            files = tuple(
                BackupFile(Role(f["role"]), _relative(f["path"]), str(f["sha256"]), int(f["bytes"]))
                for f in document["files"]
            )
            return cls(
                created=str(document["created"]),
                gatehold_version=str(document["gatehold_version"]),
                backend=str(document["backend"]),
                audit_last_seq=int(audit["last_seq"]),
                audit_head_hash=str(audit["head_hash"]),
                audit_key_included=bool(audit["key_included"]),
                files=files,
            )
        except FileNotFoundError:
            return f"{path}: not found; {folder} is not a backup made by `gatehold backup`"
        except OSError as error:
            return f"{path}: cannot be read ({error.strerror})"
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return f"{path}: not a valid manifest ({error})"

    def of_role(self, role: Role) -> list[BackupFile]:
        return [f for f in self.files if f.role is role]


def _relative(path: str) -> str:
    """A file name inside the backup folder; anything that could step out is refused."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ValueError(f"file path {path!r} leaves the backup folder")
    return path


def backend_of(settings: Settings) -> str:
    """``sqlite`` or ``postgresql``: the backend the settings' store uses."""
    backend = make_url(settings.store_dsn).get_backend_name()
    return "postgresql" if backend == "postgres" else backend


def place_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600, folders 0700) whole or not at all, replacing any file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
