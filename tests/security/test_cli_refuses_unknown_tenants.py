"""Every command that names a tenant refuses one that does not exist (or is deactivated).

`apikey create --tenant nosuchtenant` used to succeed: a key for a tenant nobody
administers, which would start working the day such a tenant appeared.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.demo.ledger import seed
from tests.support.audit_trail import gatehold, write_config

NOSUCH = ("--tenant", "nosuchtenant")
COMMANDS = {
    "apikey create": ("apikey", "create", *NOSUCH, "--role", "readonly"),
    "users add": ("users", "add", "x@acme.test", *NOSUCH, "--role", "standard"),
    "users grant": ("users", "grant", "alice@acme.test", *NOSUCH, "--role", "admin"),
    "simulate": ("rules", "simulate", "--user", "alice@acme.test", *NOSUCH, "GET", "/"),
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("store")
    seed(data / "ledger.db")
    path = write_config(data)
    for command in [
        ("tenants", "add", "acme"),
        ("users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard"),
    ]:
        done = gatehold(*command, config=path)
        assert done.returncode == 0, done.stderr
    return path


def stored(config: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(config.parent / "gatehold.db") as db:
        return list(db.execute(query))


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_naming_an_unknown_tenant_is_refused(config: Path, name: str) -> None:
    kinds_before = stored(config, "SELECT kind FROM audit_log")
    done = gatehold(*COMMANDS[name], config=config)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no tenant 'nosuchtenant'; create it with `gatehold tenants add nosuchtenant`" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert stored(config, "SELECT id FROM api_keys") == []
    assert stored(config, "SELECT tenant FROM memberships") == [("acme",)]
    assert stored(config, "SELECT kind FROM audit_log") == kinds_before


def test_a_deactivated_tenant_takes_no_new_members_or_keys(tmp_path: Path) -> None:
    seed(tmp_path / "ledger.db")
    config = write_config(tmp_path)
    for command in [("tenants", "add", "initech"), ("tenants", "deactivate", "initech")]:
        assert gatehold(*command, config=config).returncode == 0
    for command in [
        ("apikey", "create", "--tenant", "initech", "--role", "readonly"),
        ("users", "add", "x@initech.test", "--tenant", "initech", "--role", "standard"),
    ]:
        done = gatehold(*command, config=config)
        assert done.returncode == 2
        assert "tenant 'initech' is deactivated" in done.stderr
    assert stored(config, "SELECT id FROM api_keys") == []
    assert stored(config, "SELECT email FROM users") == []
