"""A first run as a new user makes it: fresh settings, ``gatehold init``, the demo on
chosen ports and the commands its banner prints.

The first steps of a new user, ``init``, the demo and its banner's commands run as
real ``gatehold`` processes; the other cases run the command in this process
(``tests.support.cli``), with the working folder and umask they name.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cli
from tests.support.servers_base import free_port

WORKTREE = Path(__file__).resolve().parents[2]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(WORKTREE), **extra}


def gatehold(
    *args: str, cwd: Path, umask: int | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    return cli.gatehold(
        *args, cwd=cwd, umask=umask, process=process, env={"PYTHONPATH": str(WORKTREE)}
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fresh_settings(folder: Path, data_dir: str) -> None:
    """What a new user writes by hand: no data folder exists yet."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gatehold.yaml").write_text(f"data_dir: {data_dir}\n")
    assert gatehold("init", "--dir", "starter", cwd=folder).returncode == 0
    (folder / "rules.yaml").write_text((folder / "starter" / "rules.yaml").read_text())


FIRST_COMMANDS = {
    "migrate": ("migrate",),
    "tenants add": ("tenants", "add", "acme"),
    "users list": ("users", "list"),
    "apikey list": ("apikey", "list"),
    "audit export": ("audit", "export", "--format", "jsonl"),
    "audit verify": ("audit", "verify"),
    "session mint": ("session", "mint", "nobody@example.com"),
}


@pytest.mark.parametrize("first", sorted(FIRST_COMMANDS))
def test_any_first_command_on_fresh_settings_creates_the_data_folder_owner_only(
    tmp_path: Path, first: str
) -> None:
    fresh_settings(tmp_path, "./state/nested/data")
    data = tmp_path / "state" / "nested" / "data"
    assert not data.exists()
    # a permissive umask must not leave the folder readable by others
    result = gatehold(*FIRST_COMMANDS[first], cwd=tmp_path, umask=0, process=first == "migrate")
    assert "unable to open database file" not in result.stderr
    assert "Traceback" not in result.stderr
    if first == "session mint":  # the store opened fine; the person does not exist
        assert result.returncode == 2
        assert "no active user 'nobody@example.com'" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
    assert data.is_dir()
    assert mode(data) == 0o700
    assert (data / "gatehold.db").is_file()


def test_fresh_settings_then_migrate_users_add_and_apikey_create(tmp_path: Path) -> None:
    fresh_settings(tmp_path, "./var")
    steps = [
        ("migrate",),
        ("tenants", "add", "acme"),
        ("users", "add", "you@example.com", "--tenant", "acme", "--role", "standard"),
        ("apikey", "create", "--tenant", "acme", "--role", "readonly"),
    ]
    for step in steps:
        result = gatehold(*step, cwd=tmp_path, process=True)
        assert result.returncode == 0, (step, result.stderr)
    assert mode(tmp_path / "var") == 0o700
    listed = gatehold("users", "list", cwd=tmp_path, process=True)
    assert "you@example.com" in listed.stdout
    keys = gatehold("apikey", "list", cwd=tmp_path, process=True)
    assert "readonly" in keys.stdout and "acme" in keys.stdout


def test_audit_verify_needs_the_key_only_once_something_was_written(tmp_path: Path) -> None:
    fresh_settings(tmp_path, "./var")
    empty = gatehold("audit", "verify", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "audit log is empty" in empty.stdout
    assert gatehold("tenants", "add", "acme", cwd=tmp_path).returncode == 0  # audited
    intact = gatehold("audit", "verify", cwd=tmp_path)
    assert intact.returncode == 0 and "audit chain intact" in intact.stdout, intact.stderr
    key = tmp_path / "var" / "keys" / "audit-chain.key"  # other key files may be there too
    assert key.is_file()
    key.rename(tmp_path / "elsewhere.key")
    keyless = gatehold("audit", "verify", cwd=tmp_path)
    assert keyless.returncode == 2
    assert "audit key file does not exist" in keyless.stderr
    assert "Traceback" not in keyless.stderr


def test_an_existing_data_folder_keeps_its_mode(tmp_path: Path) -> None:
    fresh_settings(tmp_path, "./var")
    (tmp_path / "var").mkdir(mode=0o750)
    os.chmod(tmp_path / "var", 0o750)  # noqa: S103 -- the mode an operator chose, kept
    assert gatehold("migrate", cwd=tmp_path).returncode == 0
    assert mode(tmp_path / "var") == 0o750


def test_a_data_folder_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    fresh_settings(tmp_path, "./blocked/data")
    (tmp_path / "blocked").write_text("a file where a folder should be\n")
    result = gatehold("migrate", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot create the data folder" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- init


def test_init_writes_commented_files_that_pass_check_strict(tmp_path: Path) -> None:
    result = gatehold("init", "--dir", "site", cwd=tmp_path, process=True)
    assert result.returncode == 0, result.stderr
    settings, rules = tmp_path / "site" / "gatehold.yaml", tmp_path / "site" / "rules.yaml"
    for written in (settings, rules):
        lines = written.read_text().splitlines()
        assert sum(line.lstrip().startswith("#") for line in lines) >= 5
    # the next steps are printed with the settings file, runnable as typed
    assert "--config site/gatehold.yaml" in result.stdout
    checked = gatehold(
        "check", "--strict", "--config", "site/gatehold.yaml", cwd=tmp_path, process=True
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""  # no lint warnings either
    linted = gatehold(
        "rules",
        "check",
        "--strict",
        "site/rules.yaml",
        "--config",
        "site/gatehold.yaml",
        cwd=tmp_path,
        process=True,
    )
    assert linted.returncode == 0, linted.stderr
    assert linted.stderr == ""
    # the starter settings need nothing else: the default ./gatehold.yaml is found
    assert gatehold("check", "--strict", cwd=tmp_path / "site", process=True).returncode == 0


def test_init_in_the_current_folder_and_with_an_upstream(tmp_path: Path) -> None:
    result = gatehold("init", "--upstream", "https://app.internal:8443", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'url: "https://app.internal:8443"' in (tmp_path / "rules.yaml").read_text()
    assert gatehold("check", "--strict", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("existing", ["gatehold.yaml", "rules.yaml", "both"])
def test_init_never_overwrites_and_writes_nothing_when_it_refuses(
    tmp_path: Path, existing: str
) -> None:
    names = ["gatehold.yaml", "rules.yaml"] if existing == "both" else [existing]
    for name in names:
        (tmp_path / name).write_text("# mine\n")
    result = gatehold("init", cwd=tmp_path)
    assert result.returncode == 2
    for name in names:
        assert f"{name} already exists" in result.stderr
        assert (tmp_path / name).read_text() == "# mine\n"
    # the other file is not written either: no half-initialised folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


@pytest.mark.parametrize(
    "upstream", ["127.0.0.1:5000", "ftp://app", "http://", 'http://a"b', "javascript:x"]
)
def test_init_refuses_an_upstream_that_is_no_base_url(tmp_path: Path, upstream: str) -> None:
    result = gatehold("init", "--upstream", upstream, cwd=tmp_path)
    assert result.returncode == 2
    assert "give the app's base URL" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- demo


def wait_for(url: str, process: subprocess.Popen[str], log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"the demo exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer: {log.read_text()}")


@pytest.fixture
def repository_root(tmp_path: Path) -> Path:
    """A folder laid out like a checkout after ``make``: ``.venv`` beside the data."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / ".venv").symlink_to(sys.prefix)
    return root


@pytest.fixture
def demo(repository_root: Path) -> Iterator[tuple[int, int, str]]:
    port, app_port = free_port(), free_port()
    log = repository_root / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                ".venv/bin/python",
                "-m",
                "gateway",
                "demo",
                "--port",
                str(port),
                "--app-port",
                str(app_port),
            ],
            cwd=repository_root,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/.gatehold/health", process, log)
            for _ in range(100):  # the banner is printed just after the gateway starts
                if "Press Ctrl-C" in log.read_text():
                    break
                time.sleep(0.1)
            yield port, app_port, log.read_text()
        finally:
            process.terminate()
            process.wait(20)


def test_the_demo_answers_on_the_chosen_ports(demo: tuple[int, int, str]) -> None:
    port, app_port, banner = demo
    assert f"Gatehold demo: http://127.0.0.1:{port}" in banner
    assert f"Ledger itself, unprotected: http://127.0.0.1:{app_port}" in banner
    cookie = re.search(r"alice@acme\.test.*\n\s+curl -H 'Cookie: ([^']+)'", banner)
    assert cookie is not None, banner
    for invoice, expected in ((7, 200), (8, 404)):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/invoices/{invoice}",
            headers={"Cookie": cookie.group(1), "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == expected
    # Ledger itself listens on the app port
    with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/", timeout=5) as answer:
        assert answer.status < 500


def test_the_demo_banner_commands_run_as_typed_from_the_repository_root(
    repository_root: Path, demo: tuple[int, int, str]
) -> None:
    _, _, banner = demo
    commands = [
        line.strip() for line in banner.splitlines() if line.strip().startswith(".venv/bin/")
    ]
    assert len(commands) == 4, banner
    for command in commands:
        assert command.startswith(".venv/bin/gatehold ")
        assert command.endswith(" --config var/demo/gatehold.yaml")
    outputs = {}
    for command in commands:
        result = subprocess.run(
            shlex.split(command),
            cwd=repository_root,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outputs[command.split()[1]] = result
        assert "Traceback" not in result.stderr
    assert outputs["users"].returncode == 0 and "alice@acme.test" in outputs["users"].stdout
    # a refused decision exits 1, with its reason chain
    assert outputs["rules"].returncode == 1
    assert outputs["rules"].stdout.startswith("DENY tenant-foreign")
    assert outputs["audit"].returncode == 0, outputs["audit"].stdout
    # the files walkthrough's share link: alice may download file 7, so she may share it
    assert outputs["share"].returncode == 0, outputs["share"].stderr
    assert "/.gatehold/share/" in outputs["share"].stdout


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], "demo --port 8080 --app-port 0"),
        (["PORT=9000"], "demo --port 9000 --app-port 0"),
        (["PORT=9000", "APP_PORT=9001"], "demo --port 9000 --app-port 9001"),
    ],
)
def test_make_demo_passes_the_ports_it_is_given(arguments: list[str], expected: str) -> None:
    """``make -n`` prints the recipe ``make demo`` would run, without running it."""
    repository = Path(__file__).resolve().parents[2]
    environment = {k: v for k, v in os.environ.items() if k not in ("PORT", "APP_PORT")}
    printed = subprocess.run(
        ["make", "-n", "demo", *arguments],
        cwd=repository,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    [recipe] = [line for line in printed.splitlines() if "gatehold demo" in line]
    assert recipe.endswith(f"gatehold {expected}"), recipe
