"""``gatehold rules versions|show|diff|propose|activate|rollback|impact|simulate --version``.

Real processes over one SQLite store: each command is a fresh ``gatehold`` run. With
``managed_by: file`` every change is refused with a clear message and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gateway.demo.ledger import seed
from tests.integration.test_cli import gatehold
from tests.support.stack import DEMO_RULES

READONLY = "  readonly: {can: [read]}\n"


def write_config(tmp_path: Path, managed_by: str) -> Path:
    seed(tmp_path / "ledger.db")
    path = tmp_path / "gatehold.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": ".",
                "rules": {"path": str(DEMO_RULES), "managed_by": managed_by},
                "rules_env": {
                    "LEDGER_URL": "http://127.0.0.1:9",
                    "LEDGER_DB_DSN": f"sqlite:///{tmp_path / 'ledger.db'}",
                },
            }
        )
    )
    assert gatehold("tenants", "add", "acme", config=path).returncode == 0
    added = gatehold("users", "add", "rita@acme.test", "--tenant", "acme", "--role", "readonly",
                     config=path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    return path


def audit(config: Path, kind: str) -> list[dict[str, object]]:
    lines = gatehold("audit", "export", config=config).stdout.splitlines()
    return [entry for line in lines if (entry := json.loads(line))["kind"] == kind]


@pytest.mark.timeout(300)  # some twenty commands, each a fresh interpreter
def test_the_whole_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "admin")
    first = tmp_path / "first.yaml"
    first.write_text(DEMO_RULES.read_text())
    narrowed = tmp_path / "narrowed.yaml"
    narrowed.write_text(DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [download]}\n"))

    assert gatehold("rules", "propose", str(first), "--comment", "start", config=config).stdout == (
        "rules version 1 stored; activate it with `gatehold rules activate`\n"
    )
    assert gatehold("rules", "activate", "1", config=config).returncode == 0
    proposed = gatehold("rules", "propose", str(narrowed), "--comment", "narrow", config=config)
    assert proposed.returncode == 0, proposed.stderr

    listed = gatehold("rules", "versions", config=config).stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["  2", "* 1"]
    assert listed[0].endswith("\tnarrow") and "\tcli\t" in listed[0]

    shown = gatehold("rules", "show", "2", config=config).stdout
    assert shown == narrowed.read_text()
    diff = gatehold("rules", "diff", "1", "2", config=config).stdout.splitlines()
    assert "-  readonly: {can: [read]}" in diff and "+  readonly: {can: [download]}" in diff

    as_active = gatehold("rules", "simulate", "--user", "rita@acme.test", "GET", "/api/invoices",
                         config=config)  # fmt: skip
    as_draft = gatehold("rules", "simulate", "--version", "2", "--user", "rita@acme.test",
                        "GET", "/api/invoices", config=config)  # fmt: skip
    assert as_active.returncode == 0 and as_active.stdout.startswith("ALLOW role-allowed")
    assert as_draft.returncode == 1 and as_draft.stdout.startswith("DENY role-forbidden")
    impact = gatehold("rules", "impact", "2", "--last", "10", config=config)
    assert impact.returncode == 0, impact.stderr
    assert impact.stdout.startswith("replayed 0 requests against version 2 (active: 1)")

    assert gatehold("rules", "activate", "2", "--comment", "go", config=config).returncode == 0
    rolled = gatehold("rules", "rollback", "1", "--comment", "too narrow", config=config)
    assert rolled.stdout == "rolled back: rules version 1 is active\n", rolled.stderr
    activated = audit(config, "rules-activated")
    assert [(e["data"]["after"], e["data"]["rollback"]) for e in activated] == [  # type: ignore[index]
        ({"version": 1}, False),
        ({"version": 2}, False),
        ({"version": 1}, True),
    ]

    missing = gatehold("rules", "show", "9", config=config)
    assert missing.returncode == 2 and "no rules version 9" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_invalid_proposal_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "admin")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        DEMO_RULES.read_text()
        .replace("  readonly: {can: [read]}", "  readonly: {can: [read], scope: planet}")
        .replace('    guard: {tenant_field: "/items/*/tenant", mode: block}', "    upstream2: x")
    )
    proposed = gatehold("rules", "propose", str(broken), config=config)
    assert proposed.returncode == 2
    errors = proposed.stderr.splitlines()
    assert len(errors) == 2 and all(line.startswith(f"error: {broken}:") for line in errors)
    assert "roles.readonly.scope" in errors[0] and "routes[0].upstream2" in errors[1]
    assert gatehold("rules", "versions", config=config).stdout == ""


def test_file_mode_refuses_changes_from_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "file")
    proposed = gatehold("rules", "propose", str(DEMO_RULES), config=config)
    assert proposed.returncode == 2
    assert "the rules are managed by the file" in proposed.stderr
    assert "Traceback" not in proposed.stderr
    assert gatehold("rules", "versions", config=config).stdout == ""
