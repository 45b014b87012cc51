"""The README's "Your own app in 10 minutes" runs as written.

The commands are the README's own: the fenced block after each
``<!-- first-run: setup|serve|try -->`` marker, run by ``bash`` in a folder laid out like
a checkout after ``make`` (``.venv`` beside it), against a real app (httpbin, served by
waitress). Only two addresses are swapped for free ports, so runs cannot collide: the
app's ``http://127.0.0.1:5000`` and the gateway's ``http://127.0.0.1:8080`` (the
gateway is moved there with ``GATEHOLD_SERVER__PORT`` / ``__PUBLIC_URL``, the
documented environment overrides). Each ``try`` line's trailing ``# NNN`` comment is
the status it must print.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers_base import free_port

WORKTREE = Path(__file__).resolve().parents[2]
README = WORKTREE / "README.md"
APP_ADDRESS = "http://127.0.0.1:5000"
GATEWAY_ADDRESS = "http://127.0.0.1:8080"


def marked_block(text: str, marker: str, *, kind: str = "first-run") -> str:
    """The fenced block right after ``<!-- KIND: MARKER -->``."""
    found = re.search(rf"<!-- {kind}: {marker} -->\n```sh\n(.*?)\n```", text, flags=re.DOTALL)
    assert found is not None, f"README.md has no '{kind}: {marker}' block"
    return found.group(1)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"exited early: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"port {port} never opened: {log.read_text()}")


def started(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stopped(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(20)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "httpbin.log"
    process = started(
        [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "httpbin:app"],
        tmp_path,
        dict(os.environ),
        log,
    )
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stopped(process)


def test_the_readmes_own_app_steps_run_as_written(tmp_path: Path, app: str) -> None:
    text = README.read_text()
    assert "## Your own app in 10 minutes" in text
    setup, serve, attempt = (marked_block(text, m) for m in ("setup", "serve", "try"))
    root = tmp_path / "checkout"
    root.mkdir()
    (root / ".venv").symlink_to(sys.prefix)
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "GATEHOLD_SERVER__PORT": str(port),
        "GATEHOLD_SERVER__PUBLIC_URL": gateway,
    }

    def bash(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace(APP_ADDRESS, app)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = bash(setup)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "settings and rules are valid" in done.stdout
    assert done.stderr == ""  # check --strict: no warnings
    assert (root / "myapp" / "var").is_dir()
    assert (root / "myapp" / "var").stat().st_mode & 0o777 == 0o700

    serve_lines = [line for line in serve.splitlines() if line.strip()]
    assert len(serve_lines) == 1
    log = tmp_path / "serve.log"
    server = started(["bash", "-c", f"exec {serve_lines[0]}"], root, env, log)
    try:
        wait_for_port(port, server, log)
        expected = [int(code) for code in re.findall(r"#\s*(\d{3})\s*$", attempt, re.M)]
        assert len(expected) >= 2, attempt
        tried = bash(attempt.replace(GATEWAY_ADDRESS, gateway))
        assert tried.returncode == 0, tried.stdout + tried.stderr
        assert [int(code) for code in tried.stdout.split()] == expected
    finally:
        stopped(server)
    # what the README's requests did is in the audit trail, and the chain is intact
    verified = bash(".venv/bin/gatehold audit verify --config myapp/gatehold.yaml")
    assert verified.returncode == 0, verified.stdout + verified.stderr
