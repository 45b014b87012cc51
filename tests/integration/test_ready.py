"""``/ready`` on the admin listener follows the store: a real ``gatehold serve`` on a
PostgreSQL cluster this test starts from the installed binaries is ready, answers 503
naming the store once the cluster is stopped (liveness still 200), and is ready again
when the cluster is started, without a restart of the gateway. In process: a stopped
audit writer makes the same page answer 503 naming the writer.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.live import LIVE
from gateway.readiness import ready_page_for
from tests.integration.test_deploy_files import configmap_file, loopback_settings
from tests.integration.test_rules_reload_on_sighup import _wait_for_port
from tests.support.pg_cluster import Cluster, started_cluster
from tests.support.servers_base import free_port
from tests.support.stack import running_stack


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with started_cluster("gatehold-ready-pg-") as running:
        yield running


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _health(config: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """``gatehold health``: its exit status and its one line."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "health", "--config", str(config), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, (done.stdout + done.stderr).strip()


def _eventually(port: int, path: str, status: int, within: float) -> dict[str, object]:
    deadline = time.monotonic() + within
    while True:
        got, body = _get(port, path)
        if got == status or time.monotonic() > deadline:
            assert got == status, body
            return body
        time.sleep(0.2)


def test_ready_follows_the_store_without_a_restart(tmp_path: Path, cluster: Cluster) -> None:
    settings = yaml.safe_load(configmap_file("gatehold.yaml"))
    server = settings["server"]
    port, admin = free_port(), free_port()
    ports = {server["port"]: port, server["admin_port"]: admin}
    rules = tmp_path / "rules.yaml"
    rules.write_text(configmap_file("rules.yaml"))
    settings["rules"] = str(rules)
    config = loopback_settings(settings, tmp_path, ports)
    env = {
        **os.environ,
        "GATEHOLD_STORE__DSN": cluster.dsn,
        "GATEHOLD_AUDIT_KEY": secrets.token_hex(32),
        "APP_URL": f"http://127.0.0.1:{free_port()}",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    ready_url = f"http://127.0.0.1:{admin}/ready"
    log = tmp_path / "serve.log"
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            env=env,
            stdout=errors,
            stderr=errors,
        ) as process,  # fmt: skip
    ):
        try:
            _wait_for_port(port, process, log)
            _wait_for_port(admin, process, log)
            assert _get(admin, "/ready") == (200, {"status": "ready"})
            healthy = f"healthy: {ready_url} answered 200 ready"
            assert _health(config, env, "--ready") == (0, healthy)

            cluster.stop()
            body = _eventually(admin, "/ready", 503, within=10)
            assert body["status"] == "not-ready"
            reasons = body["reasons"]
            assert isinstance(reasons, list)
            assert [r for r in reasons if str(r).startswith("store:")], reasons
            # Only the store is missing; the process itself is alive.
            assert len(reasons) == 1, reasons
            assert _get(port, "/.gatehold/health") == (200, {"status": "ok"})
            assert _get(admin, "/health") == (200, {"status": "ok"})
            # The container's health check says the same, in one line, and liveness holds.
            unready = f"unhealthy: {ready_url} answered 503: store: not answering"
            assert _health(config, env, "--ready") == (1, unready)
            assert _health(config, env)[0] == 0

            cluster.start()
            assert _eventually(admin, "/ready", 200, within=15) == {"status": "ready"}
            assert _health(config, env, "--ready")[0] == 0
            assert process.poll() is None, log.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


async def test_ready_names_a_stopped_audit_writer(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        admin = web.Application()
        admin.router.add_get("/ready", ready_page_for(stack.app))
        async with TestClient(TestServer(admin)) as client:
            answer = await client.get("/ready")
            assert (answer.status, await answer.json()) == (200, {"status": "ready"})

            await stack.app[LIVE].current.audit.close()
            answer = await client.get("/ready")
            assert answer.status == 503
            assert await answer.json() == {
                "status": "not-ready",
                "reasons": ["audit: the audit writer is not running"],
            }
