"""Real processes for tests: the demo Ledger and ``gatehold serve``, each a subprocess.

``ledger_process`` seeds and starts Ledger; ``settings_file`` writes a settings file for
the demo rules in front of it; ``serving`` starts ``gatehold serve`` on it, waits for
its ports and stops it with SIGTERM (its stderr is kept in a log file). Several
``serving`` on settings that share one store are replicas. ``magic_link_sign_in`` signs
a person in through the mail outbox, as a browser would.
"""

from __future__ import annotations

import asyncio
import email
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.demo.ledger import seed
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

BIND = "__Host-gatehold-bind=the-browser-this-test-signs-in-with"
SESSION_COOKIE = "__Host-gatehold"
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LINK = re.compile(r"/\.gatehold/login/magic/confirm\?token=([A-Za-z0-9_\-.~%]+)")


@dataclass
class Ledger:
    port: int
    db: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Served:
    """One running ``gatehold serve``."""

    port: int
    admin_port: int | None
    config: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    """Until something listens on ``port``; fails at once if ``process`` ended."""

    def said() -> str:
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, said()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}: {said()}")


@contextmanager
def ledger_process(folder: Path) -> Iterator[Ledger]:
    """The demo Ledger on a free port, on a freshly seeded database in ``folder``."""
    db = folder / "ledger.db"
    seed(db)
    port = free_port()
    command = [sys.executable, "-m", "gateway.demo.ledger", "--port", str(port), "--db", str(db)]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        try:
            wait_for_port(port, process)
            yield Ledger(port, db, process)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


def settings_file(
    path: Path, ledger: Ledger, *, port: int, admin_port: int | None = None, **overrides: Any
) -> Path:
    """Settings for the demo rules in front of ``ledger``, data in ``path``'s folder."""
    server: dict[str, Any] = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    if admin_port is not None:
        server["admin_port"] = admin_port
    settings: dict[str, Any] = {
        "data_dir": ".",
        "rules": str(DEMO_RULES),
        "server": server,
        "rules_env": {"LEDGER_URL": ledger.url, "LEDGER_DB_DSN": f"sqlite:///{ledger.db}"},
    }
    settings.update(overrides)
    path.write_text(yaml.safe_dump(settings))
    return path


@contextmanager
def serving(config: Path, log: Path) -> Iterator[Served]:
    """``gatehold serve --config config`` until the block ends (then SIGTERM)."""
    server = yaml.safe_load(config.read_text())["server"]
    port, admin_port = int(server["port"]), server.get("admin_port")
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        ) as process,
    ):
        try:
            wait_for_port(port, process, log)
            if admin_port is not None:
                wait_for_port(int(admin_port), process, log)
            yield Served(port, admin_port, config, log, process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def mail_text(path: Path) -> str:
    mail = email.message_from_bytes(path.read_bytes())
    parts = mail.walk() if mail.is_multipart() else [mail]
    return "".join(
        payload.decode()
        for part in parts
        if isinstance(payload := part.get_payload(decode=True), bytes)
    )


async def magic_link_sign_in(client: aiohttp.ClientSession, outbox: Path, email: str) -> str:
    """A magic-link sign-in of ``email`` on ``client``'s gateway; the session cookie's value.

    ``outbox`` is the settings' mail outbox folder; mails already in it are ignored.
    """
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    asked = await client.post(
        "/.gatehold/login/magic", data={"email": email, "rd": "/"}, headers={"Cookie": BIND}
    )
    assert asked.status == 200
    token = ""
    for _ in range(100):
        mails = sorted(set(outbox.glob("*.eml")) - before) if outbox.exists() else []
        found = LINK.search(mail_text(mails[0])) if mails else None
        if found:
            token = found.group(1)
            break
        await asyncio.sleep(0.05)
    assert token, "no magic link in the outbox"
    page = await client.get(f"/.gatehold/login/magic/confirm?token={token}")
    assert page.status == 200
    nonce = NONCE.search(await page.text())
    assert nonce
    confirm = page.cookies["__Host-gatehold-confirm"].value
    signed_in = await client.post(
        "/.gatehold/login/magic/confirm",
        data={"token": token, "nonce": nonce.group(1)},
        headers={"Cookie": f"__Host-gatehold-confirm={confirm}; {BIND}"},
        allow_redirects=False,
    )
    assert signed_in.status in (302, 303), await signed_in.text()
    return signed_in.cookies[SESSION_COOKIE].value
