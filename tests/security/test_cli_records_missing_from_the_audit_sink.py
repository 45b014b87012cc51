"""Attack surface: records written by the `gatehold` CLI skipped the JSON-lines sink.

A SIEM fed from the sink never saw `users add`, `session mint` or `users deactivate`:
the quiet way to grant oneself a role or a session. Every record, whoever writes it,
must reach every configured sink, the same as in the store.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.demo.ledger import seed
from tests.support.audit_trail import checkpoint_lines, gatehold, write_config


def stored_rows(data_dir: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(data_dir / "gatehold.db") as db:
        return list(db.execute("SELECT seq, kind, hash FROM audit_log ORDER BY seq"))


def test_every_record_the_cli_writes_reaches_the_jsonl_sink(tmp_path: Path) -> None:
    seed(tmp_path / "ledger.db")
    sink = tmp_path / "siem" / "audit.jsonl"
    sink.parent.mkdir()
    config = write_config(tmp_path, jsonl_path=str(sink))

    commands = [
        ("tenants", "add", "acme"),
        ("tenants", "add", "globex"),
        ("users", "add", "mallory@acme.test", "--tenant", "acme", "--role", "admin"),
        ("users", "add", "mallory@acme.test", "--tenant", "globex", "--role", "admin"),
        ("session", "mint", "mallory@acme.test"),
        ("apikey", "create", "--tenant", "acme", "--role", "admin", "--label", "x"),
        ("apikey", "revoke", "1"),
        ("users", "deactivate", "mallory@acme.test"),
        ("audit", "export"),
    ]
    for command in commands:
        done = gatehold(*command, config=config)
        assert done.returncode == 0, (command, done.stderr)

    stored = stored_rows(tmp_path)
    kinds = [kind for _, kind, _ in stored]
    for kind in ("user-added", "session-revoked", "session-minted", "apikey-created"):
        assert kind in kinds
    for kind in ("apikey-revoked", "user-deactivated", "audit-exported"):
        assert kind in kinds
    assert sink.exists(), "the CLI wrote nothing to the sink"
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [(line["seq"], line["kind"], line["hash"]) for line in lines] == stored
    assert lines[0]["data"] == {
        "before": None,
        "after": {"active": True, "display_name": "acme"},
    }
    assert lines[2]["data"] == {
        "grants": ["admin@acme"],
        "subject": "mallory@acme.test",
        "before": None,
        "after": {
            "display_name": "",
            "state": "active",
            "active": True,
            "superadmin": False,
            "memberships": ["admin@acme"],
        },
    }


def test_every_cli_command_leaves_a_checkpoint_of_what_it_wrote(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert gatehold("users", "add", "rita@acme.test", config=config).returncode == 0
    assert gatehold("session", "mint", "rita@acme.test", config=config).returncode == 0

    [(last_seq, _, last_hash)] = stored_rows(tmp_path)[-1:]
    [*_, checkpoint] = checkpoint_lines(tmp_path / "audit-checkpoints.jsonl")
    assert (checkpoint["seq"], checkpoint["head_hash"]) == (last_seq, last_hash)
    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 0, verified.stdout
