"""The container image starts as its Dockerfile says, on a read-only root.

Docker cannot run here, so the Dockerfile's final stage is read (USER, ENV, WORKDIR,
VOLUME, ENTRYPOINT + CMD, HEALTHCHECK, COPY) and its command line is run as the
image's user, with its environment, in a private mount namespace whose root is
read-only, the volume and the copied settings bound at their places and /tmp a
scratch folder (``tests/support/image_root.py``). The gateway must start on the
settings shipped in the image, answer ``/ready``, forward a signed-in request to the
demo app, pass its own HEALTHCHECK, and leave everything it wrote in the volume.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from sqlalchemy.engine import make_url

from gateway.config.settings import load_settings
from gateway.demo.ledger import seed
from gateway.store.data_folder import sqlite_file
from tests.integration.test_rules_reload_on_sighup import _wait_for_port
from tests.support.dockerfile import final_stage
from tests.support.image_root import (
    ROOT,
    SYSTEM_PATH,
    ImageRoot,
    build_stage,
    require_tools,
    run,
)
from tests.support.servers_base import free_port

IMAGE = final_stage(ROOT / "Dockerfile")


def shipped_settings_path() -> Path:
    """The settings file the image's command names, as it sits in this checkout."""
    config = PurePosixPath(IMAGE.env["GATEHOLD_CONFIG"])
    assert IMAGE.cmd[IMAGE.cmd.index("--config") + 1] == str(config)
    for copy in IMAGE.copies:
        destination = PurePosixPath(copy.destination)
        if copy.from_stage is None and config.parent == destination:
            (source,) = copy.sources
            return ROOT / source / config.name
    raise AssertionError(f"no COPY puts {config} in the image")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# ---------------------------------------------------------------- the Dockerfile itself


def test_the_image_runs_as_a_numeric_non_root_user_with_its_data_in_the_volume() -> None:
    uid, gid = IMAGE.uid_gid
    assert uid > 0 and gid > 0
    assert IMAGE.volumes == [IMAGE.workdir]
    assert IMAGE.env["HOME"] == IMAGE.workdir
    assert IMAGE.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert IMAGE.entrypoint == ["gatehold"]
    # The light check: the settings and an HTTP request, not the whole command line.
    assert IMAGE.healthcheck == ["python", "-m", "gateway.healthcheck", "--ready"]
    assert float(IMAGE.healthcheck_options["timeout"].rstrip("s")) > 4  # health's own timeout


def test_every_package_the_project_installs_is_copied_into_the_build() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {source.rstrip("/") for copy in IMAGE.build_copies for source in copy.sources}
    assert {package.rstrip("*") for package in packages} <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    # A link in a package (the demo rules) must find its target in the build too.
    for source in copied:
        for link in filter(Path.is_symlink, (ROOT / source).rglob("*")):
            target = link.resolve().relative_to(ROOT)
            assert any(target.is_relative_to(folder) for folder in copied), (link, target)


def test_the_shipped_settings_write_only_into_the_volume() -> None:
    (volume,) = map(Path, IMAGE.volumes)
    settings = load_settings(shipped_settings_path(), env={}, cwd=ROOT)
    assert settings.data_path == volume
    store = sqlite_file(make_url(settings.store_dsn))
    written = {
        "store": store,
        "assertion key": settings.key_path,
        "audit key": settings.audit_key_path,
        "audit checkpoints": settings.audit_checkpoints_path,
        "mail outbox": settings.outbox_path,
        "audit copy": settings.audit_jsonl_path,
    }
    for what, path in written.items():
        assert path is None or volume in path.parents, (what, path)
    # Health checks find the listeners through the settings, so both are set.
    assert settings.server.admin_port and settings.server.host == "0.0.0.0"
    # The rules it names are in the image too.
    shipped = {PurePosixPath(c.destination) for c in IMAGE.copies if c.from_stage is None}
    assert PurePosixPath(settings.rules_path).parent in shipped


# ---------------------------------------------------------------- the image, run


@dataclass
class Container:
    root: ImageRoot
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    admin_port: int

    def exec(self, *argv: str, as_root: bool = False) -> subprocess.CompletedProcess[str]:
        return run(self.root.exec_argv(self.process.pid, argv, as_root=as_root))

    def gatehold(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.exec(*IMAGE.entrypoint, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo app Ledger on this machine, the upstream of the container."""
    folder = tmp_path_factory.mktemp("ledger")
    seed(folder / "ledger.db")
    port = free_port()
    log = folder / "ledger.log"
    argv = ["--host", "127.0.0.1", "--port", str(port), "--db", str(folder / "ledger.db")]
    with log.open("w") as out, subprocess.Popen(
        [sys.executable, "-m", "gateway.demo.ledger", *argv], stdout=out, stderr=out
    ) as process:  # fmt: skip
        try:
            _wait_for_port(port, process, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def started(scratch: Path, site: Path, app_url: str) -> Iterator[Container]:
    """``docker run`` of the image, stopped (SIGTERM, as ``docker stop``) afterwards."""
    require_tools()
    port, admin_port = free_port(), free_port()
    # As `docker run -e`: loopback ports of this machine (no network namespace here), the app.
    run_env = {
        "GATEHOLD_SERVER__HOST": "127.0.0.1",
        "GATEHOLD_SERVER__PORT": str(port),
        "GATEHOLD_SERVER__ADMIN_PORT": str(admin_port),
        "GATEHOLD_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "APP_URL": app_url,
    }
    root = ImageRoot(IMAGE, scratch, site, run_env)
    log = root.scratch / "container.log"
    with log.open("w") as out, subprocess.Popen(
        root.run_argv(), env={"PATH": SYSTEM_PATH}, stdout=out, stderr=out
    ) as process:  # fmt: skip
        try:
            _wait_for_port(admin_port, process, log)
            _wait_for_port(port, process, log)
            yield Container(root, process, log, port, admin_port)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the image's build stage installs it."""
    return build_stage(IMAGE, tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def container(
    tmp_path_factory: pytest.TempPathFactory, site: Path, ledger: str
) -> Iterator[Container]:
    with started(tmp_path_factory.mktemp("image"), site, ledger) as running:
        yield running


def test_the_settings_shipped_in_the_image_pass_the_strict_check(
    tmp_path: Path, site: Path
) -> None:
    require_tools()
    root = ImageRoot(IMAGE, tmp_path, site, {"APP_URL": "http://app:8080"})
    checked = run(root.run_argv(["check", "--strict"]))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "settings and rules are valid (/etc/gatehold/rules.yaml)" in checked.stdout
    assert not any(root.volume.iterdir()), "a check wrote into the volume"


def test_the_image_starts_answers_ready_and_passes_its_healthcheck(container: Container) -> None:
    started = [json.loads(line) for line in container.log.read_text().splitlines()]
    start = next(line for line in started if line.get("message") == "gatehold started")
    assert start["listeners"][1] == f"http://127.0.0.1:{container.admin_port} (admin)"
    assert start["store"] == "sqlite"
    assert get(container.admin_port, "/ready") == (200, '{"status": "ready"}')
    health = container.exec(*IMAGE.healthcheck)
    assert health.returncode == 0, health.stderr
    assert health.stdout.startswith(f"healthy: http://127.0.0.1:{container.admin_port}/ready")
    # What runs is what the build stage installed, where the image has it.
    where = container.exec("python", "-c", "import gateway, admin_ui; print(gateway.__file__)")
    assert where.stdout.startswith(container.root.site_packages + "/gateway/"), where


def test_a_signed_in_request_is_forwarded_to_the_app(container: Container) -> None:
    container.gatehold("tenants", "add", "acme")
    container.gatehold("users", "add", "ann@acme.test", "--tenant", "acme", "--role", "readonly")
    cookie = container.gatehold("session", "mint", "ann@acme.test").stdout.strip()
    assert get(container.port, "/api/echo")[0] == 401  # not signed in: not forwarded
    status, body = get(container.port, "/api/echo", {"Cookie": cookie})
    assert status == 200, body
    assert json.loads(body)["headers"]["X-Gatehold-Tenant"] == "acme"


def test_nothing_is_written_outside_the_volume(container: Container) -> None:
    volume = container.root.volume
    # The namespace's root really is read-only: even root cannot write to it.
    probe = f".write-probe-{secrets.token_hex(4)}"
    for folder in ("/", "/etc/gatehold", str(ROOT), str(Path(sys.executable).parent)):
        target = str(PurePosixPath(folder) / probe)
        refused = container.exec("touch", target, as_root=True)
        leaked = Path(target)
        if leaked.exists():  # the namespace is broken: clean up this machine, then fail
            leaked.unlink()
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, target
    # The image's user may write to the volume, and nowhere on the root.
    assert container.exec("touch", f"{IMAGE.workdir}/{probe}").returncode == 0
    (volume / probe).unlink()
    assert container.exec("touch", f"/{probe}").returncode != 0

    get(container.port, "/")  # one more request, audited, before the volume is looked at
    written = {str(p.relative_to(volume)) for p in volume.rglob("*")}
    assert {"gatehold.db", "audit-checkpoints.jsonl", "keys/audit-chain.key"} <= written
    assert {"keys/assertion-es256.pem", "keys/csrf.key"} <= written
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in volume.rglob("*")}
    assert owners == {IMAGE.uid_gid}
    assert not container.root.written_to_tmp(), "left behind in /tmp"
    assert os.stat(volume).st_mode & 0o777 == 0o700
    assert "Traceback" not in container.log.read_text()


def test_the_image_stops_on_sigterm_and_its_healthcheck_then_fails(
    tmp_path: Path, site: Path
) -> None:
    with started(tmp_path, site, "http://127.0.0.1:9") as container:
        # A second process in the namespace, to run the health check in after the stop.
        keeper = subprocess.Popen(
            container.root.exec_argv(container.process.pid, ["sleep", "60"]),
            env={"PATH": SYSTEM_PATH},
        )
        try:
            assert container.exec(*IMAGE.healthcheck).returncode == 0
            container.process.send_signal(signal.SIGTERM)  # docker stop
            assert container.process.wait(30) == 0, container.log.read_text()
            health = run(container.root.exec_argv(keeper.pid, IMAGE.healthcheck))
        finally:
            keeper.kill()
            keeper.wait(10)
    assert health.returncode == 1
    assert health.stderr.startswith(
        f"unhealthy: nothing answers at http://127.0.0.1:{container.admin_port}/ready"
    )
    assert "Traceback" not in health.stderr + container.log.read_text()
    assert "gatehold stopped" in container.log.read_text()
