"""The ``gatehold`` command against a real store.

Most commands run in this process (``tests.support.cli``); the workflow of users,
sessions, simulation and the audit trail, a missing settings file and ``serve
--workers`` run as real processes.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from gateway.demo.ledger import seed
from tests.support.cli import gatehold
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES


@pytest.fixture
def config(tmp_path: Path) -> Path:
    seed(tmp_path / "ledger.db")
    path = tmp_path / "gatehold.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": ".",
                "rules": str(DEMO_RULES),
                "rules_env": {
                    "LEDGER_URL": "http://127.0.0.1:9",
                    "LEDGER_DB_DSN": f"sqlite:///{tmp_path / 'ledger.db'}",
                },
            }
        )
    )
    for tenant in ("acme", "globex"):
        assert gatehold("tenants", "add", tenant, config=path).returncode == 0
    return path


def test_rules_check_reports_every_error_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text(
        "version: 1\n"
        "upstreams:\n"
        "  ledger: {url: 'http://127.0.0.1:9001'}\n"
        "roles:\n"
        "  standard: {can: [read]}\n"
        "routes:\n"
        "  - name: a\n"
        "    match: {path: /a, metods: [GET]}\n"
        "    upstream: ledger\n"
        "  - name: b\n"
        "    match: {path: /b}\n"
        "    upstream: ledgr\n"
    )
    result = gatehold("rules", "check", str(broken))
    assert result.returncode == 2
    assert (
        f"{broken}:8: routes[0].match.metods: unknown key 'metods'; did you mean 'methods'?"
        in result.stderr
    )
    # the second mistake shows up once the first is fixed: cross-reference checks
    broken.write_text(broken.read_text().replace("metods", "methods"))
    result = gatehold("rules", "check", str(broken))
    assert result.returncode == 2
    assert f"{broken}:12: routes[1].upstream: unknown upstream 'ledgr'" in result.stderr
    assert "use one of: ledger" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_rules_are_valid() -> None:
    result = gatehold("rules", "check", str(DEMO_RULES))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_users_mint_simulate_verify_and_export(config: Path) -> None:
    added = gatehold(
        "users",
        "add",
        "alice@acme.test",
        "--tenant",
        "acme",
        "--role",
        "standard",
        "--tenant",
        "globex",
        "--role",
        "readonly",
        config=config,
        process=True,
    )
    assert added.returncode == 0, added.stderr
    assert "standard in acme, readonly in globex" in added.stdout
    listed = gatehold("users", "list", config=config, process=True)
    assert "alice@acme.test" in listed.stdout

    minted = gatehold("session", "mint", "alice@acme.test", config=config, process=True)
    assert minted.returncode == 0, minted.stderr
    assert minted.stdout.startswith("__Host-gatehold=")

    simulated = gatehold(
        "rules",
        "simulate",
        "--user",
        "alice@acme.test",
        "GET",
        "/files/1",
        config=config,
        process=True,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert simulated.stdout.startswith("ALLOW role-allowed")
    assert "document 1 (path.doc_id) is owned by 'acme'" in simulated.stdout
    readonly = gatehold(
        "rules",
        "simulate",
        "--user",
        "alice@acme.test",
        "GET",
        "/files/2",
        config=config,
        process=True,
    )
    assert readonly.returncode == 1
    assert readonly.stdout.startswith("DENY role-forbidden")
    assert "holds readonly in 'globex'; none allows 'download'" in readonly.stdout
    denied = gatehold(
        "rules",
        "simulate",
        "--user",
        "alice@acme.test",
        "DELETE",
        "/files/1",
        config=config,
        process=True,
    )
    assert denied.returncode == 1
    assert denied.stdout.startswith("DENY method-not-allowed")

    verified = gatehold("audit", "verify", config=config, process=True)
    assert verified.returncode == 0, verified.stdout
    exported = gatehold("audit", "export", "--format", "jsonl", config=config, process=True)
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert "user-added" in kinds and "session-minted" in kinds

    database = config.parent / "gatehold.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
        db.execute("DELETE FROM audit_log WHERE seq = 2")
    tampered = gatehold("audit", "verify", config=config, process=True)
    assert tampered.returncode == 1
    assert "seq 1" in tampered.stdout and "2" in tampered.stdout


def test_a_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = gatehold("users", "list", cwd=tmp_path, process=True)
    assert result.returncode == 2
    assert "settings file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_keys_are_printed_once_listed_without_secrets_and_revoked(config: Path) -> None:
    created = gatehold(
        "apikey",
        "create",
        "--tenant",
        "acme",
        "--role",
        "readonly",
        "--expires",
        "90d",
        "--label",
        "erp",
        config=config,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ghk_") and len(key) > 40
    listed = gatehold("apikey", "list", config=config)
    assert "readonly@acme\tlive\terp\texpires 20" in listed.stdout
    assert listed.stdout.rstrip().endswith("\tlast used never")
    assert key not in listed.stdout
    with sqlite3.connect(config.parent / "gatehold.db") as db:
        stored = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    assert key not in stored and len(stored[0]) == 64, "only a hash is stored"
    revoked = gatehold("apikey", "revoke", "1", config=config)
    assert revoked.returncode == 0
    assert "revoked" in gatehold("apikey", "list", config=config).stdout
    kinds = [
        json.loads(line)["kind"]
        for line in gatehold("audit", "export", config=config).stdout.splitlines()
    ]
    assert "apikey-created" in kinds and "apikey-revoked" in kinds


def listening_pids(port: int) -> set[int]:
    """Processes holding a listening TCP socket on ``port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(str(fd.readlink()) in inodes for fd in (proc / "fd").iterdir()):
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (from /proc)."""
    children = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            children.add(int(proc.name))
    return children


def test_serve_with_workers_runs_them_all_on_one_port_and_stops_them(
    config: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = yaml.safe_load(config.read_text())
    settings["server"] = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    config.write_text(yaml.safe_dump(settings))
    assert gatehold("migrate", config=config).returncode == 0
    log = tmp_path / "serve.log"
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--workers", "3", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + 60
            while len(listening_pids(port)) < 3 and time.monotonic() < deadline:
                assert server.poll() is None, log.read_text()
                time.sleep(0.2)
            serving = listening_pids(port)
            assert len(serving) == 3 and server.pid in serving  # the first process serves too
            assert children_of(server.pid) == serving - {server.pid}  # and no helper process
            for _ in range(10):
                url = f"http://127.0.0.1:{port}/.gatehold/health"
                with urllib.request.urlopen(url) as answer:
                    assert answer.status == 200
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    deadline = time.monotonic() + 15
    while listening_pids(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert listening_pids(port) == set(), "a worker outlived the server"


def test_tenants_and_user_workflows_through_the_command(config: Path) -> None:
    steps: list[tuple[tuple[str, ...], str]] = [
        (("tenants", "rename", "acme", "Acme Corp"), "tenant acme is now called Acme Corp"),
        (("tenants", "add", "initech", "--name", "Initech"), "tenant initech (Initech) created"),
        (("users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard"), ""),
        (
            ("users", "grant", "alice@acme.test", "--tenant", "initech", "--role", "readonly"),
            "standard in acme, readonly in initech",
        ),
        (
            ("users", "set-role", "alice@acme.test", "--tenant", "acme", "--role", "admin"),
            "readonly in initech, admin in acme",
        ),
        (
            ("users", "ungrant", "alice@acme.test", "--tenant", "initech", "--role", "readonly"),
            "alice@acme.test has: admin in acme",
        ),
        (("users", "deactivate", "alice@acme.test"), "deactivated"),
        (("users", "reactivate", "alice@acme.test"), "alice@acme.test reactivated"),
        (("tenants", "deactivate", "initech"), "tenant initech deactivated; 0 session(s) ended"),
    ]
    for command, expected in steps:
        done = gatehold(*command, config=config)
        assert done.returncode == 0, (command, done.stderr)
        assert expected in done.stdout, (command, done.stdout)

    listed = gatehold("tenants", "list", config=config).stdout.splitlines()
    assert listed == [
        "acme\tactive\tAcme Corp",
        "globex\tactive\tglobex",
        "initech\tdeactivated\tInitech",
    ]
    users = gatehold("users", "list", config=config).stdout
    assert "alice@acme.test\tactive\tlast active never\tadmin in acme" in users

    refused = gatehold(
        "users", "ungrant", "alice@acme.test", "--tenant", "acme", "--role", "standard",
        config=config,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "does not hold standard in acme (holds: admin@acme)" in refused.stderr

    kinds = [
        json.loads(line)["kind"]
        for line in gatehold("audit", "export", config=config).stdout.splitlines()
    ]
    for kind in (
        "tenant-created",
        "tenant-renamed",
        "role-changed",
        "membership-removed",
        "user-deactivated",
        "user-reactivated",
        "tenant-deactivated",
    ):
        assert kind in kinds


def test_an_admin_key_is_made_with_admin_and_listed_as_one(config: Path) -> None:
    created = gatehold(
        "apikey", "create", "--admin", "--tenant", "*", "--role", "admin", config=config
    )
    assert created.returncode == 0, created.stderr
    assert "admin API key 1" in created.stderr
    assert "admin@*\tlive\tadmin\t" in gatehold("apikey", "list", config=config).stdout
    plain = gatehold("apikey", "create", "--tenant", "*", "--role", "admin", config=config)
    assert plain.returncode == 2 and "not '*'" in plain.stderr


def test_users_invite_mails_a_link_and_lists_the_person_as_invited(config: Path) -> None:
    invited = gatehold(
        "users",
        "invite",
        "dora@acme.test",
        "--grant",
        "standard@acme",
        "--grant",
        "readonly@globex",
        "--by",
        "Dana from IT",
        config=config,
    )
    assert invited.returncode == 0, invited.stderr
    assert "dora@acme.test invited with: standard in acme, readonly in globex" in invited.stdout
    (mail,) = (config.parent / "outbox").glob("*.eml")
    text = mail.read_text()
    assert "Dana from IT invited you to acme, globex." in text
    assert "/.gatehold/login/magic/confirm?token=" in text
    assert "expires in 3 days" in text

    listed = gatehold("users", "list", config=config).stdout
    assert "dora@acme.test\tinvited\tlast active never\tstandard in acme, readonly in globex" in (
        listed
    )
    kinds = [
        json.loads(line)["kind"]
        for line in gatehold("audit", "export", config=config).stdout.splitlines()
    ]
    assert "user-invited" in kinds


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("--grant", "standard"), "write it as ROLE@TENANT"),
        (("--grant", "standard@initech"), "no tenant 'initech'"),
        (("--grant", "boss@acme"), "unknown role 'boss'"),
        (("--grant", "standard@acme", "--valid", "30d"), "at most 14 days"),
        (("--grant", "standard@acme", "--valid", "soon"), "--valid"),
    ],
    ids=["a grant without a tenant", "an unknown tenant", "an unknown role", "too long", "no time"],
)
def test_users_invite_refuses_bad_input_clearly(
    config: Path, arguments: tuple[str, ...], problem: str
) -> None:
    done = gatehold("users", "invite", "dora@acme.test", *arguments, config=config)
    assert done.returncode == 2, done.stdout
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert not (config.parent / "outbox").exists()
    assert "dora@acme.test" not in gatehold("users", "list", config=config).stdout
