"""``gatehold health`` as a container runs it: exit 1 with one line, never a traceback,
whatever is wrong. (Healthy gateways: ``test_ready.py`` and ``test_deploy_files.py``
ask a real ``gatehold serve``, ``test_container_image.py`` the image's.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.support.servers_base import free_port


def health(
    config: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "health", "--config", str(config), *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def settings_file(folder: Path, **server: object) -> Path:
    path = folder / "gatehold.yaml"
    path.write_text(yaml.safe_dump({"server": server, "data_dir": str(folder / "data")}))
    return path


def assert_one_line_unhealthy(done: subprocess.CompletedProcess[str], starts: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.startswith(f"unhealthy: {starts}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_nothing_listening_is_unhealthy(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    config = settings_file(tmp_path, port=port, admin_port=admin)
    done = health(config)
    assert_one_line_unhealthy(done, f"nothing answers at http://127.0.0.1:{port}/.gatehold/health")
    assert "connection refused" in done.stderr
    done = health(config, "--ready")
    assert_one_line_unhealthy(done, f"nothing answers at http://127.0.0.1:{admin}/ready")


def test_the_port_comes_from_the_environment_overrides_too(tmp_path: Path) -> None:
    config = settings_file(tmp_path, port=free_port(), admin_port=free_port())
    admin = free_port()
    done = health(config, "--ready", env={"GATEHOLD_SERVER__ADMIN_PORT": str(admin)})
    assert_one_line_unhealthy(done, f"nothing answers at http://127.0.0.1:{admin}/ready")


def test_a_listener_that_never_answers_is_unhealthy_after_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:  # the kernel completes connections; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        done = health(settings_file(tmp_path, port=port), "--timeout", "0.5")
    assert_one_line_unhealthy(done, f"http://127.0.0.1:{port}/.gatehold/health did not answer")
    assert "within 0.5 s" in done.stderr


def test_readiness_without_an_admin_listener_is_unhealthy(tmp_path: Path) -> None:
    done = health(settings_file(tmp_path, port=free_port()), "--ready")
    assert_one_line_unhealthy(done, "server.admin_port is not set")


def test_settings_that_do_not_load_are_unhealthy_not_exit_2(tmp_path: Path) -> None:
    """Docker reserves a health check's exit status 2; every failure is 1."""
    done = health(tmp_path / "missing.yaml")
    assert_one_line_unhealthy(done, f"settings: {tmp_path / 'missing.yaml'}: settings file not")
    config = settings_file(tmp_path, port="eighty", admin_port=0, bogus=1)
    done = health(config, "--ready")
    assert_one_line_unhealthy(done, f"settings: {config}:")
    assert "(and 2 more; run gatehold check)" in done.stderr


def test_the_light_check_and_gatehold_health_say_the_same(tmp_path: Path) -> None:
    """``python -m gateway.healthcheck`` (the image's HEALTHCHECK) is ``gatehold health``
    without the rest of the command line: same lines, same exit statuses."""
    config = tmp_path / "gatehold.yaml"
    config.write_text("server: {port: 9, admin_port: 10}\n")
    for ready in ([], ["--ready"]):
        full = subprocess.run(
            [sys.executable, "-m", "gateway", "health", "--config", str(config), *ready],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        light = subprocess.run(
            [sys.executable, "-m", "gateway.healthcheck", "--config", str(config), *ready],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (light.returncode, light.stderr) == (full.returncode, full.stderr)
        assert light.returncode == 1
        assert light.stderr.startswith("unhealthy: nothing answers at http://127.0.0.1:")
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: {port: nope}\n")
    light = subprocess.run(
        [sys.executable, "-m", "gateway.healthcheck", "--config", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert light.returncode == 1 and light.stderr.startswith("unhealthy: settings:")
    assert "Traceback" not in light.stderr
