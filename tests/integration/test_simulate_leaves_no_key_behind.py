"""``gatehold rules simulate`` decides without creating any key file.

It runs where an operator tries out rules, often not on the gateway's host: a signing
key or audit secret it created there would be a second copy of a secret, or one the
gateway never uses. It builds only the deciding stages, so it writes nothing but what
the store itself needs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from gateway.auth.keys import ASSERTION_KEY
from gateway.demo.ledger import seed
from tests.support import cli
from tests.support.stack import DEMO_RULES


def gatehold(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return cli.gatehold(*args, config=config)


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` but the store's own (SQLite and its journal files)."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("gatehold.db")
    }


def test_simulate_creates_no_key_and_no_other_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seed(tmp_path / "ledger.db")
    config = tmp_path / "gatehold.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data),
                "rules": str(DEMO_RULES),
                "rules_env": {
                    "LEDGER_URL": "http://127.0.0.1:9",
                    "LEDGER_DB_DSN": f"sqlite:///{tmp_path / 'ledger.db'}",
                },
                "audit": {"key": "s" * 40},
            }
        )
    )
    assert gatehold("tenants", "add", "acme", config=config).returncode == 0
    added = gatehold(
        "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard", config=config
    )
    assert added.returncode == 0, added.stderr
    before = files_under(data)

    for method, target, verdict in [
        ("GET", "/files/1", "ALLOW role-allowed"),
        ("GET", "/files/2", "DENY tenant-foreign"),
        ("GET", "/api/invoices/%2e%2e/1", "DENY target-ambiguous"),
    ]:
        simulated = gatehold(
            "rules", "simulate", "--user", "alice@acme.test", method, target, config=config
        )
        assert simulated.stdout.startswith(verdict), simulated.stdout + simulated.stderr

    assert files_under(data) == before
    assert not (data / "keys" / ASSERTION_KEY).exists()


def test_simulate_reads_request_headers(tmp_path: Path) -> None:
    """A WebSocket upgrade is decided as one: the route must take WebSockets."""
    seed(tmp_path / "ledger.db")
    config = tmp_path / "gatehold.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path),
                "rules": str(DEMO_RULES),
                "rules_env": {"LEDGER_DB_DSN": f"sqlite:///{tmp_path / 'ledger.db'}"},
                "audit": {"key": "s" * 40},
            }
        )
    )
    assert gatehold("tenants", "add", "acme", config=config).returncode == 0
    gatehold(
        "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard", config=config
    )
    upgrade = ["--header", "Upgrade: websocket"]
    plain = gatehold(
        "rules", "simulate", "--user", "alice@acme.test", "GET", "/files/1", config=config
    )
    assert plain.stdout.startswith("ALLOW role-allowed"), plain.stdout + plain.stderr
    socket = gatehold(
        "rules", "simulate", "--user", "alice@acme.test", *upgrade, "GET", "/files/1", config=config
    )
    assert socket.stdout.startswith("DENY method-not-allowed"), socket.stdout + socket.stderr
    assert "does not take WebSockets" in socket.stdout
    feed = gatehold(
        "rules",
        "simulate",
        "--user",
        "alice@acme.test",
        *upgrade,
        "GET",
        "/ws/acme/feed",
        config=config,
    )
    assert feed.stdout.startswith("ALLOW role-allowed"), feed.stdout + feed.stderr
    bad = gatehold(
        "rules",
        "simulate",
        "--user",
        "alice@acme.test",
        "--header",
        "nocolon",
        "GET",
        "/",
        config=config,
    )
    assert bad.returncode == 2 and "Name: value" in bad.stderr
