"""``gatehold serve`` reloads its rules on SIGHUP, and never stops for it.

Real processes: the demo Ledger as the upstream, ``gatehold serve`` (one worker or
several) in front of it, the rules file changed on disk and the signal sent. The file
manages the rules (the default): SIGHUP stores the changed file as a new version and
activates it once (``rules-activated``); every process then runs it (``rules-applied``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.demo.ledger import seed
from tests.integration.test_cli import gatehold, listening_pids
from tests.support.served import wait_for_port as _wait_for_port
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

READONLY = "  readonly: {can: [read]}\n"
INVALID = (
    "version: 1\n"
    "upstreams:\n"
    "  ledger: {url: 'http://127.0.0.1:9', timeout: 30s}\n"
    "roles:\n"
    "  readonly: {can: [read], scope: everywhere}\n"
    "  auditor: {can: [read], scope: anywhere}\n"
    "routes:\n"
    "  - name: invoice-list\n"
    "    match: {path: /api/invoices, methods: [GET]}\n"
    "    upstream: ledger\n"
)


@dataclass
class Served:
    port: int
    ledger: int
    rules: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes]
    key: str

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {self.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ledger_total(self) -> int:
        url = f"http://127.0.0.1:{self.ledger}/__ledger/hits/total"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(json.loads(answer.read())["total"])

    def audit(self, kind: str) -> list[dict[str, Any]]:
        exported = gatehold("audit", "export", config=self.config).stdout.splitlines()
        return [entry for line in exported if (entry := json.loads(line))["kind"] == kind]

    def hang_up(self) -> None:
        self.process.send_signal(signal.SIGHUP)


def _eventually(check: Any, within: float = 1.0) -> Any:
    """``check()`` once it is truthy, polled for ``within`` seconds; else its last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    seed(tmp_path / "ledger.db")
    ledger_port, port = free_port(), free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text(DEMO_RULES.read_text())
    config = tmp_path / "gatehold.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": ".",
                "rules": str(rules),
                "server": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
                "rules_env": {
                    "LEDGER_URL": f"http://127.0.0.1:{ledger_port}",
                    "LEDGER_DB_DSN": f"sqlite:///{tmp_path / 'ledger.db'}",
                },
            }
        )
    )
    assert gatehold("tenants", "add", "acme", config=config).returncode == 0
    created = gatehold(
        "apikey", "create", "--tenant", "acme", "--role", "readonly", "--expires", "1d",
        config=config,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "gateway", "serve", "--workers", str(request.param)]
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.demo.ledger",
                "--port",
                str(ledger_port),
                "--db",
                str(tmp_path / "ledger.db"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as ledger,  # fmt: skip
        subprocess.Popen(
            [*command, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=errors
        ) as server,
    ):
        try:
            _wait_for_port(ledger_port, ledger, log)
            _wait_for_port(port, server, log)
            if request.param > 1:  # every worker listening before the first request
                listening = _eventually(
                    lambda: len(listening_pids(port)) == request.param, within=60
                )
                assert listening, log.read_text()
            yield Served(port, ledger_port, rules, config, log, server, created.stdout.strip())
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            ledger.terminate()
            ledger.wait(10)


def test_sighup_activates_changed_rules_for_new_requests(served: Served) -> None:
    assert served.get("/api/invoices")[0] == 200
    narrowed = served.rules.read_text().replace(READONLY, "  readonly: {can: [download]}\n")
    assert narrowed != served.rules.read_text()
    served.rules.write_text(narrowed)
    served.hang_up()
    # Every worker runs the new rules once it has audited them (each new connection
    # may reach either one): wait for that, not for a time that may not be enough.
    workers = len(_listeners(served))
    applied = _eventually(lambda: len(served.audit("rules-applied")) >= workers, within=30)
    assert applied, served.log.read_text()
    forwarded = served.ledger_total()
    answers = [served.get("/api/invoices") for _ in range(12)]
    assert {status for status, _ in answers} == {403}, answers
    assert served.process.poll() is None, "SIGHUP stopped the server"
    assert served.ledger_total() == forwarded, "a refused request reached Ledger"
    digest = hashlib.sha256(narrowed.encode()).hexdigest()
    (activated,) = _activations(served, digest)
    assert activated["actor"] == "file" and activated["data"]["problems"] == []
    before, after = activated["data"]["before"]["version"], activated["data"]["after"]["version"]
    assert before is not None and after > before
    events = served.audit("rules-applied")
    assert len(events) == workers
    assert {(e["data"]["digest"], e["data"]["version"]) for e in events} == {(digest, after)}
    denied = [e for e in served.audit("request") if e.get("decision") == "deny"]
    assert len(denied) >= 12 and {e["reason"] for e in denied} == {denied[0]["reason"]}


def test_sighup_with_an_invalid_file_keeps_the_running_rules(served: Served) -> None:
    served.rules.write_text(INVALID)
    before = served.ledger_total()
    served.hang_up()
    workers = len(_listeners(served))  # each one reads the file and rejects it
    problems = _eventually(lambda: len(served.audit("rules-rejected")) == workers, within=30)
    assert problems, served.log.read_text()
    assert served.process.poll() is None, "SIGHUP with a bad file stopped the server"
    answers = [served.get("/api/invoices")[0] for _ in range(6)]
    assert answers == [200] * 6, "the running rules were not kept"
    assert served.ledger_total() == before + 6
    log = served.log.read_text()
    assert "Traceback" not in log
    rules = str(served.rules)
    assert f"{rules}:5: roles.readonly.scope" in log, log
    assert f"{rules}:6: roles.auditor.scope" in log, log
    rejected = served.audit("rules-rejected")
    assert len(rejected) == len(_listeners(served))
    assert all(len(e["data"]["problems"]) >= 2 for e in rejected)


def _activations(served: Served, digest: str) -> list[dict[str, Any]]:
    """The ``rules-activated`` records of the rules with ``digest`` (start adds its own)."""
    return [e for e in served.audit("rules-activated") if e["data"]["digest"] == digest]


def _listeners(served: Served) -> set[int]:
    return listening_pids(served.port)


@pytest.mark.parametrize("served", [2], indirect=True, ids=["two-workers"])
def test_a_worker_sent_sighup_directly_activates_for_every_process(served: Served) -> None:
    from tests.integration.test_cli import children_of

    workers = children_of(served.process.pid)
    assert len(workers) == 1
    (worker,) = workers
    assert _eventually(lambda: _listeners(served) == {served.process.pid, worker}, within=30)
    narrowed = served.rules.read_text().replace(READONLY, "  readonly: {can: [download]}\n")
    served.rules.write_text(narrowed)
    os.kill(worker, signal.SIGHUP)
    digest = hashlib.sha256(narrowed.encode()).hexdigest()
    assert _eventually(lambda: _activations(served, digest), within=30), served.log.read_text()
    # The other process was not signalled: it follows the store within a poll.
    assert _eventually(lambda: len(served.audit("rules-applied")) == 2, within=30), (
        served.log.read_text()
    )
    time.sleep(0.5)  # time for a second activation, which must not come
    assert len(_activations(served, digest)) == 1, "one signal, one new version"
    applied = served.audit("rules-applied")
    assert len(applied) == 2 and {e["data"]["digest"] for e in applied} == {digest}
    assert served.get("/api/invoices")[0] == 403
    assert served.process.poll() is None
    assert _listeners(served) == {served.process.pid, worker}, "a worker stopped"


@pytest.mark.parametrize("served", [2], indirect=True, ids=["two-workers"])
def test_every_worker_start_line_names_the_size_of_its_group(served: Served) -> None:
    from tests.integration.test_cli import children_of

    (worker,) = children_of(served.process.pid)
    assert _eventually(lambda: _listeners(served) == {served.process.pid, worker}, within=30)

    def start_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in served.log.read_text().splitlines()]
        return [line for line in lines if line["message"] == "gatehold started"]

    lines = _eventually(lambda: len(start_lines()) == 2 and start_lines(), within=10)
    assert lines, served.log.read_text()
    assert {line["pid"] for line in lines} == {served.process.pid, worker}
    assert [line["workers"] for line in lines] == [2, 2]
