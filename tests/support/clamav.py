"""A real ClamAV ``clamd`` for the tests, on a local socket, with a signature database
the tests write themselves.

No signatures can be downloaded here, and ``clamd`` has none built in, so the database
holds one signature: the EICAR test file, the harmless string every scanner is built
to report, as a body signature (anywhere in a file) and as an MD5 (the whole file).
The string is assembled at run time, so no file of the project is itself flagged.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.clamd import Clamd
from tests.support.components import require_component

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
"""The 68-byte EICAR test string (two halves, joined here)."""
SIGNATURE = "Test.EICAR.Gatehold"


@dataclass
class RunningClamd:
    socket: str
    pid: int
    folder: Path

    def stop(self) -> None:
        """Stop the daemon (the socket is gone afterwards): the scanner is down."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return


def write_config(folder: Path, *, stream_max: str = "64M") -> Path:
    """A database with the EICAR signatures and a ``clamd.conf`` listening on a socket
    in ``folder``; files up to ``stream_max`` are taken whole."""
    db = folder / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "gatehold.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
    md5 = hashlib.md5(EICAR).hexdigest()  # noqa: S324 - ClamAV's .hdb format is MD5
    (db / "gatehold.hdb").write_text(f"{md5}:{len(EICAR)}:{SIGNATURE}.MD5\n")
    conf = folder / "clamd.conf"
    conf.write_text(
        "\n".join(
            [
                f"DatabaseDirectory {db}",
                f"LocalSocket {folder / 'clamd.sock'}",
                "Foreground yes",
                f"LogFile {folder / 'clamd.log'}",
                f"PidFile {folder / 'clamd.pid'}",
                f"StreamMaxLength {stream_max}",
                f"MaxScanSize {stream_max}",
                f"MaxFileSize {stream_max}",
                "",
            ]
        )
    )
    return conf


@asynccontextmanager
async def running_clamd(folder: Path, *, stream_max: str = "64M") -> AsyncIterator[RunningClamd]:
    """``clamd`` on a socket in ``folder`` until the block ends (answers PING first)."""
    if not os.path.exists(CLAMD):
        require_component("clamd", "install Debian's clamav-daemon (make system-deps)")
    conf = write_config(folder, stream_max=stream_max)
    process = subprocess.Popen(
        [CLAMD, "--config-file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = RunningClamd(str(folder / "clamd.sock"), process.pid, folder)
    try:
        await _until_it_answers(Clamd(running.socket, timeout=1.0), process)
        yield running
    finally:
        running.stop()
        await asyncio.to_thread(process.wait, 10)


async def _until_it_answers(clamd: Clamd, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clamd exited with {process.returncode}")
        if await clamd.ping():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("clamd did not answer PING within 30 s")
