"""``gatehold serve`` as a process group a test can SIGKILL, and a load that counts.

``ServedGroup`` starts ``gatehold serve`` in a session of its own, so the master and
its ``--workers`` children share one process group: ``kill`` sends SIGKILL to all of
them at once, as a crashed host or an OOM kill of the container would, and returns
once none of them runs any more (zombies count as gone: they hold no socket, lock or
file). ``Load`` sends the demo people's calls through it from many concurrent clients
and keeps, per call, whether an answer came and which request id it carried; a call
cut off by a kill or refused while the gateway is down is counted, never retried.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.served import wait_for_port
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

CALLS: tuple[tuple[str, str, str], ...] = (
    ("alice@acme.test", "GET", "/api/invoices/7"),  # her own: allowed
    ("alice@acme.test", "GET", "/api/invoices/8"),  # globex's: denied 404
    ("bob@globex.test", "GET", "/api/invoices/8"),  # his own: allowed
    ("bob@globex.test", "GET", "/api/invoices/7"),  # acme's: denied 404
    ("rita@acme.test", "GET", "/api/invoices"),  # a list: allowed
    ("rita@acme.test", "POST", "/api/invoices"),  # readonly writes: denied 403
    ("alice@acme.test", "POST", "/api/reports"),  # a create that teaches an owner
)
"""(who, method, path): allowed and denied calls of the demo people."""


def serve_config(
    folder: Path, *, ledger_url: str, dsn: str | None = None, workers: int = 1
) -> tuple[Path, int]:
    """``folder/gatehold.yaml`` for the demo rules in front of Ledger (its database in
    ``folder``), data in ``folder/data``, on a free port; the file and the port."""
    port = free_port()
    config = folder / "gatehold.yaml"
    settings: dict[str, Any] = {
        "data_dir": str(folder / "data"),
        "rules": str(DEMO_RULES),
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "workers": workers,
        },
        "logging": {"format": "json", "level": "info"},
        "rules_env": {
            "LEDGER_URL": ledger_url,
            "LEDGER_DB_DSN": f"sqlite:///{folder / 'ledger.db'}",
        },
    }
    if dsn is not None:
        settings["store"] = {"dsn": dsn}
    config.write_text(yaml.safe_dump(settings))
    return config, port


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` still running (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class ServedGroup:
    """One ``gatehold serve`` (master and workers) in its own process group."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway", "serve", "--config", str(self.config)]

    def start(self, *, argv: Sequence[str] | None = None) -> None:
        """Start ``argv`` (default: ``command()``) and wait until the port is open."""
        assert self.process is None, "already running"
        with self.log.open("a") as errors:
            self.process = subprocess.Popen(
                list(argv) if argv is not None else self.command(),
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, self.log)

    @property
    def members(self) -> list[int]:
        return [] if self.process is None else group_members(self.process.pid)

    def kill(self) -> int:
        """SIGKILL the whole group; returns how many processes it held."""
        assert self.process is not None
        held = len(self.members)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while group_members(self.process.pid):
            assert time.monotonic() < deadline, "a worker outlived SIGKILL"
            time.sleep(0.02)
        self.process = None
        return held

    def stop(self) -> None:
        """SIGTERM, as an operator stops it; the master stops its workers."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        finally:
            if group_members(self.process.pid):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None


@dataclass
class Load:
    """Clients sending ``CALLS`` with the people's sessions until ``stopping`` is set."""

    url: str
    sessions: dict[str, str]
    clients: int = 30
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0
    """Calls whose connection was refused: no gateway was listening (between a kill and
    the next start)."""
    cut_off: int = 0
    """Calls sent whose connection was reset or closed without an answer (by a kill)."""
    answers: list[tuple[str, int]] = field(default_factory=list)
    """(request id, status) of every answer."""

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    async def run(self) -> None:
        """Run the clients until ``stopping`` is set."""
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(
            self.url, timeout=timeout, connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            await asyncio.gather(*(self._client(http, n) for n in range(self.clients)))

    async def _client(self, http: aiohttp.ClientSession, seed: int) -> None:
        choose = random.Random(seed)
        while not self.stopping.is_set():
            email, method, path = choose.choice(CALLS)
            headers = {
                "Cookie": f"__Host-gatehold={self.sessions[email]}",
                "Accept": "application/json",
            }
            body: dict[str, Any] | None = {"title": "monthly"} if method == "POST" else None
            self.sent += 1
            try:
                async with http.request(method, path, headers=headers, json=body) as reply:
                    await reply.read()
                    self.statuses[reply.status] += 1
                    self.answers.append((reply.headers.get("X-Request-Id", ""), reply.status))
            except aiohttp.ClientConnectorError:
                self.refused += 1
                await asyncio.sleep(0.1)  # down: do not spin while it restarts
            except (aiohttp.ClientError, OSError):
                self.cut_off += 1
