"""The command run in the test process answers as the real ``python -m gateway`` does.

Most CLI tests run ``gateway.cli.main`` in the test process (``tests.support.cli``), a
second each cheaper than a new interpreter. This checks the shortcut against the real
thing: help, a usage error, listings, a refusal, a simulated denial and the audit
check, run both ways on the same store, give the same exit status, stdout and stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from tests.integration.test_cli import config
from tests.support.cli import PROG_NAME, gatehold, run_in_process
from tests.support.stack import DEMO_RULES

__all__ = ["config"]

COMMANDS: list[tuple[str, ...]] = [
    ("--help",),
    ("no-such-command",),
    ("users", "list"),
    ("users", "add", "x@acme.test", "--tenant", "nowhere", "--role", "standard"),
    ("rules", "simulate", "--user", "alice@acme.test", "DELETE", "/files/1"),
    ("reviews", "show", "acme"),
    ("audit", "verify"),
]
"""Commands that change nothing, so running one twice gives the same answer."""


def test_in_process_and_real_process_answer_alike(config: Path) -> None:
    added = gatehold(
        "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard", config=config
    )
    assert added.returncode == 0, added.stderr
    argvs = [[*command, "--config", str(config)] for command in COMMANDS]
    argvs.append(["rules", "check", str(DEMO_RULES)])
    in_process = [run_in_process(argv) for argv in argvs]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    differences = []
    for argv, mine, process in zip(argvs, in_process, processes, strict=True):
        stdout, stderr = process.communicate(timeout=120)
        real = (process.returncode, stdout, stderr)
        if (mine.returncode, mine.stdout, mine.stderr) != real:
            differences.append(f"{argv}: in process {mine!r}, real {real!r}")
    assert differences == []
    assert {answer.returncode for answer in in_process} >= {0, 1, 2}  # refusals too


def test_an_escaping_exception_is_a_traceback_and_status_1() -> None:
    """As the interpreter reports it: the in-process run hides no crash."""

    @click.command()
    def crashes() -> None:
        click.echo("started")
        raise RuntimeError("boom")

    answer = run_in_process([], command=crashes)
    assert (answer.returncode, answer.stdout) == (1, "started\n")
    assert answer.stderr.startswith("Traceback (most recent call last):")
    assert answer.stderr.endswith("RuntimeError: boom\n")
    assert answer.args == [PROG_NAME]
