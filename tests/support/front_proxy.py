"""Real front proxies (Debian's nginx-light and Caddy) on loopback, run with the config
``gatehold export`` writes, in front of a gateway in forward-auth mode.

``front_proxy(kind, plan, folder)`` writes the exported config into ``folder``, starts
the proxy (nginx with its prefix there; Caddy with its state there), waits for its port
and stops it at the end (nginx SIGQUIT, Caddy SIGTERM). A missing binary fails in CI
(``require_component``). ``forward_auth_stack`` runs the in-process gateway of
``tests.support.stack`` with the front proxy's address as its public URL and loopback
as its trusted proxy, and one front proxy of each kind asked for in front of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.export_caddy import caddy_config
from gateway.export_nginx import nginx_config
from gateway.export_plan import ExportPlan, build_plan
from tests.support.components import require_component
from tests.support.servers_base import free_port
from tests.support.stack import Stack, running_stack

KINDS = ("nginx", "caddy")
BINARIES = {"nginx": "/usr/sbin/nginx", "caddy": "/usr/bin/caddy"}
PACKAGES = {"nginx": "nginx-light", "caddy": "caddy"}


@dataclass
class FrontProxy:
    """One running front proxy."""

    kind: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def binary(kind: str) -> str:
    """The proxy's executable, or the test fails in CI / skips elsewhere."""
    path = shutil.which(kind) or BINARIES[kind]
    if not os.path.exists(path):
        require_component(kind, f"apt-get install {PACKAGES[kind]}")
    return path


def write_config(kind: str, plan: ExportPlan, folder: Path) -> tuple[list[str], Path]:
    """The exported config written under ``folder``, and the command that serves it."""
    if kind == "nginx":
        for sub in ("logs", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config = folder / "nginx.conf"
        config.write_text(nginx_config(plan, standalone=True))
        command = [binary(kind), "-p", f"{folder}/", "-c", "nginx.conf", "-g", "daemon off;"]
        return command, config
    config = folder / "Caddyfile"
    config.write_text(caddy_config(plan, standalone=True))
    command = [binary(kind), "run", "--config", str(config), "--adapter", "caddyfile"]
    return command, config


@contextmanager
def front_proxy(kind: str, plan: ExportPlan, folder: Path) -> Iterator[FrontProxy]:
    """``kind`` serving ``plan``'s exported config on ``plan.listen`` until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    command, config = write_config(kind, plan, folder)
    port = int(plan.listen.rpartition(":")[2])
    log = folder / "proxy.log"
    env = {**os.environ, "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder)}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=folder)
    running = FrontProxy(kind, port, config, log, process)
    try:
        _wait_for_port(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT if kind == "nginx" else signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_for_port(proxy: FrontProxy) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise AssertionError(f"{proxy.kind} ended: {proxy.log_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", proxy.port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{proxy.kind} does not listen on {proxy.port}: {proxy.log_text()}")


@dataclass
class ForwardAuthStack:
    """A gateway, and front proxies in forward-auth mode in front of it."""

    stack: Stack
    plan: ExportPlan
    proxies: dict[str, FrontProxy]


@asynccontextmanager
async def forward_auth_stack(
    data_dir: Path,
    kinds: Sequence[str] = KINDS,
    *,
    rules_text: str | None = None,
    public: str | None = None,
    **overrides: Any,
) -> AsyncIterator[ForwardAuthStack]:
    """A gateway (trusting loopback as its proxy) with ``kinds`` of front proxy before it.

    ``public`` names the kind whose address is the gateway's public URL (the one a
    browser uses); by default the first kind.
    """
    for kind in kinds:
        binary(kind)
    ports = {kind: free_port() for kind in kinds}
    gateway_port = free_port()
    shown = ports[public or kinds[0]] if kinds else gateway_port
    server = {"public_url": f"http://127.0.0.1:{shown}", "trusted_proxies": ["127.0.0.1"]}
    async with (
        running_stack(
            data_dir,
            rules_text=rules_text,
            port=gateway_port,
            server=server,
            forward_auth={"enabled": True},
            **overrides,
        ) as stack,
        AsyncExitStack() as exits,
    ):
        proxies = {}
        plan = build_plan(
            stack.ruleset,
            gatehold_url=f"http://127.0.0.1:{gateway_port}",
            listen="",
            apps_read_method_override=stack.settings.forward_auth.apps_read_method_override,
        )
        for kind in kinds:
            listening = replace(plan, listen=f"127.0.0.1:{ports[kind]}")
            proxies[kind] = await asyncio.to_thread(
                exits.enter_context, front_proxy(kind, listening, data_dir / kind)
            )
        yield ForwardAuthStack(stack, plan, proxies)
