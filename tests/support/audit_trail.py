"""A real audit trail to attack: the gateway writes it, the `gatehold` CLI verifies it.

``fill`` runs the whole gateway (in front of Ledger) on a data folder and sends real
requests, so the records, the key file and the checkpoints are exactly what a
deployment would have. ``gatehold`` runs the real command in a subprocess against the
same folder through a settings file that ``write_config`` makes. The attacker's tools
(``Attacker``) work on the SQLite file with plain ``sqlite3``: someone who can write the
database, but cannot read the key file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support import cli
from tests.support.stack import DEMO_RULES, running_stack

Hasher = Callable[[str, str], str]
"""(prev_hash, canonical JSON of the other columns) → the hash an attacker computes."""

HASHED = ("actor", "data", "decision", "kind", "method", "path", "prev_hash", "reason")
HASHED += ("request_id", "route", "seq", "tenant", "ts")


def write_config(data_dir: Path, **audit: Any) -> Path:
    """A settings file for the CLI that matches ``running_stack(data_dir, audit=audit)``."""
    path = data_dir / "gatehold.yaml"
    settings: dict[str, Any] = {
        "data_dir": ".",
        "rules": str(DEMO_RULES),
        "rules_env": {
            "LEDGER_URL": "http://127.0.0.1:9",
            "LEDGER_DB_DSN": f"sqlite:///{data_dir / 'ledger.db'}",
        },
    }
    if audit:
        settings["audit"] = audit
    path.write_text(yaml.safe_dump(settings))
    return path


def gatehold(
    *args: str, config: Path, env: dict[str, str] | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it (``env``: added to the environment).

    ``process``: a real process, for a command that must run beside a gateway in this
    process as another process would (file locks, for one, are held per process).
    """
    return cli.gatehold(*args, config=config, env=env, process=process)


async def fill(data_dir: Path, requests: int, **audit: Any) -> None:
    """Send ``requests`` real requests through the gateway; close it (final checkpoint)."""
    overrides = {"audit": audit} if audit else {}
    async with running_stack(data_dir, **overrides) as stack:
        for n in range(requests):
            response = await stack.client.get(
                f"/api/invoices/{n % 3 + 1}", headers=stack.cookie("alice@acme.test")
            )
            await response.read()


def plain_sha256(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("ascii")).hexdigest()


def guessed_key(secret: bytes) -> Hasher:
    """HMAC-SHA256 under a key the attacker guessed (used raw and derived both fail)."""

    def hasher(prev_hash: str, content: str) -> str:
        return hmac.new(secret, (prev_hash + content).encode("ascii"), "sha256").hexdigest()

    return hasher


class Attacker:
    """Someone with write access to the database file (not to the key)."""

    def __init__(self, data_dir: Path) -> None:
        self.db = sqlite3.connect(data_dir / "gatehold.db", isolation_level=None)

    def close(self) -> None:
        self.db.close()

    def last_seq(self) -> int:
        return int(self.db.execute("SELECT max(seq) FROM audit_log").fetchone()[0] or 0)

    def truncate(self, keep: int) -> None:
        """Delete every row after seq ``keep`` and point the head at row ``keep``."""
        self.db.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
        row = self.db.execute("SELECT hash FROM audit_log WHERE seq = ?", (keep,)).fetchone()
        head_hash = row[0] if row else "0" * 64
        self.db.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (keep, head_hash))

    def rewrite(self, seq: int, **columns: str) -> None:
        sets = ", ".join(f"{name} = ?" for name in columns)
        self.db.execute(f"UPDATE audit_log SET {sets} WHERE seq = ?", (*columns.values(), seq))  # noqa: S608

    def rehash_from(self, seq: int, hasher: Hasher) -> None:
        """Recompute ``hash`` and ``prev_hash`` from ``seq`` to the end; move the head."""
        prev = self.db.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
        prev_hash = prev[0] if prev else "0" * 64
        names = ", ".join(HASHED)
        rows = self.db.execute(
            f"SELECT {names} FROM audit_log WHERE seq >= ? ORDER BY seq",  # noqa: S608
            (seq,),
        ).fetchall()
        for values in rows:
            record = dict(zip(HASHED, values, strict=True)) | {"prev_hash": prev_hash}
            content = json.dumps(record, sort_keys=True, separators=(",", ":"))
            new_hash = hasher(prev_hash, content)
            self.db.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev_hash, new_hash, record["seq"]),
            )
            prev_hash = new_hash
        last = self.last_seq()
        self.db.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (last, prev_hash))


def checkpoint_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
