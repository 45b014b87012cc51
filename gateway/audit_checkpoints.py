"""Signed checkpoints of the audit chain, kept outside the database.

The keyed chain (``gateway.store.audit_log``) shows an edited or re-hashed row, but not
rows cut off the end with the head reset to the last row kept: what remains is a
consistent, shorter chain. A checkpoint is the outside memory of how far the chain
went: ``{"seq", "head_hash", "ts", "sig"}`` says that at ``ts`` row ``seq`` carried
``head_hash``, and ``sig`` is an HMAC-SHA256 of the other three under the audit key's
checkpoint key. ``gatehold audit verify --checkpoints FILE`` then reports a log that
ends before a checkpoint (truncation), a row whose hash differs from its checkpoint
(re-hashing), and a checkpoint line whose signature does not match (forged or edited).

Checkpoints are appended, one JSON line each, to an append-only file (fsynced), and
optionally sent to syslog, so that a copy lies beyond the reach of whoever holds the
gateway's disk. An HMAC rather than an Ed25519 signature: verifying the chain needs the
secret anyway (the row hashes are keyed), and one secret is one thing less to manage.
Syslog lines carry a ``gatehold-audit-checkpoint:`` prefix; the reader skips anything
before the JSON object, so a file a syslog daemon collected can be verified as is.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import socket
from collections.abc import Iterable
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any

from gateway.audit_keys import AuditKey
from gateway.config.settings import syslog_address
from gateway.store.audit_log import Checkpoint, canonical_json

SYSLOG_TAG = "gatehold-audit-checkpoint"
_FIELDS = frozenset({"seq", "head_hash", "ts", "sig"})


def signature(key: AuditKey, *, seq: int, head_hash: str, ts: float) -> str:
    """HMAC-SHA256 of the checkpoint's canonical JSON under the checkpoint key."""
    content = canonical_json({"head_hash": head_hash, "seq": seq, "ts": ts})
    return hmac.digest(key.checkpoint, content.encode("ascii"), "sha256").hex()


def checkpoint_line(key: AuditKey, *, seq: int, head_hash: str, ts: float) -> str:
    """The JSON line written for a checkpoint (no newline)."""
    sig = signature(key, seq=seq, head_hash=head_hash, ts=ts)
    return canonical_json({"head_hash": head_hash, "seq": seq, "sig": sig, "ts": ts})


def parse_checkpoints(
    lines: Iterable[str], key: AuditKey, *, origin: str
) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints whose signature matches, and one problem per line that does not."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        parsed = _parse(line)
        if isinstance(parsed, str):
            problems.append(f"checkpoint {where}: {parsed}")
            continue
        seq, head_hash, ts, sig = parsed
        expected = signature(key, seq=seq, head_hash=head_hash, ts=ts)
        if not hmac.compare_digest(sig, expected):
            problems.append(
                f"checkpoint {where}: forged or edited (its signature does not match; "
                f"it claims seq {seq})"
            )
            continue
        found.append(Checkpoint(seq=seq, head_hash=head_hash, ts=ts, origin=where))
    return found, problems


def read_checkpoints(path: Path, key: AuditKey) -> tuple[list[Checkpoint], list[str]]:
    """``parse_checkpoints`` of a file; a missing or unreadable file is one problem."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], [f"checkpoints {path}: the file does not exist (deleted, or never written)"]
    except OSError as error:
        return [], [f"checkpoints {path}: cannot be read: {error.strerror}"]
    return parse_checkpoints(text.splitlines(), key, origin=str(path))


def _parse(line: str) -> tuple[int, str, float, str] | str:
    """``(seq, head_hash, ts, sig)``, or why the line is not a checkpoint."""
    start = line.find("{")
    try:
        value: Any = json.loads(line[start:].rstrip("\x00")) if start >= 0 else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or set(value) != _FIELDS:
        return "not a checkpoint (expected a JSON object with seq, head_hash, ts and sig)"
    seq, head_hash, ts, sig = (value[name] for name in ("seq", "head_hash", "ts", "sig"))
    if type(seq) is not int or seq < 1:
        return "not a checkpoint (seq must be a positive integer)"
    if not _is_hex(head_hash, 64) or not _is_hex(sig, 64):
        return "not a checkpoint (head_hash and sig must be 64 hex digits)"
    if type(ts) not in (int, float) or not math.isfinite(ts):
        return "not a checkpoint (ts must be a number)"
    return seq, head_hash, float(ts), sig


def _is_hex(value: object, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value)
    )


class CheckpointWriter:
    """Appends signed checkpoints to a file and, if configured, to syslog.

    ``write`` blocks (an append and an fsync): the audit writer calls it off the event
    loop. Raises ``OSError`` when the file cannot be written; a syslog failure is logged
    and does not stop the file's copy.
    """

    def __init__(self, path: Path, key: AuditKey, *, syslog: str | None = None) -> None:
        self.path = path
        self._key = key
        self._syslog_address = syslog_address(syslog) if syslog is not None else None
        self._syslog: SysLogHandler | None = None

    def write(self, *, seq: int, head_hash: str, ts: float) -> None:
        line = checkpoint_line(self._key, seq=seq, head_hash=head_hash, ts=ts)
        self._append(line + "\n")
        if self._syslog_address is not None:
            self._send(line)

    def create(self) -> None:
        """Make the file, empty, unless it exists (the audit writer calls this before
        its first commit).

        Otherwise a crash between a new store's first commit and its first checkpoint
        would leave records and no checkpoint file, which ``audit verify`` must report
        as a deleted file. Someone able to delete the file could empty it as well, so an
        empty file proves no less than a missing one.
        """
        self._append("")

    def _append(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        descriptor = os.open(self.path, flags, 0o600)
        try:
            os.write(descriptor, text.encode("ascii"))  # one write: lines never interleave
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _send(self, line: str) -> None:
        try:
            handler = self._handler()
            handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
        except OSError as error:
            logging.getLogger(__name__).error(
                "audit checkpoint to syslog %s failed: %s", self._syslog_address, error
            )

    def _handler(self) -> SysLogHandler:
        if self._syslog is None:
            handler = _SysLog(
                address=self._syslog_address or "/dev/log",
                facility=SysLogHandler.LOG_AUTHPRIV,
                socktype=socket.SOCK_DGRAM,
            )
            handler.setFormatter(logging.Formatter(f"{SYSLOG_TAG}: %(message)s"))
            connection: socket.socket | None = getattr(handler, "socket", None)
            if connection is not None:  # a full syslog queue drops a line, never stalls
                connection.setblocking(False)
            self._syslog = handler
        return self._syslog

    def close(self) -> None:
        if self._syslog is not None:
            self._syslog.close()
            self._syslog = None


class _SysLog(SysLogHandler):
    """A ``SysLogHandler`` that lets a failed send raise, so it is counted, not printed."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # ``emit`` calls this inside its ``except``: re-raise what it caught
