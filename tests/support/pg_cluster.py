"""A throwaway PostgreSQL cluster a test starts from the installed binaries, so it can
stop and start it (``pg_ctl stop -m fast`` or ``-m immediate``) while gateways use it.

Run by the ``postgres`` system user when the tests run as root (PostgreSQL refuses to
run as root); trust authentication for the ``gatehold`` role on loopback only.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.components import require_component
from tests.support.servers_base import free_port

StopMode = Literal["smart", "fast", "immediate"]


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster run by the ``postgres`` system user."""

    bin: Path
    folder: Path
    port: int

    def pg_ctl(self, *args: str) -> None:
        data = self.folder / "data"
        command = [str(self.bin / "pg_ctl"), "-D", str(data), "-w", *args]
        done = subprocess.run(
            _as_postgres(command), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-o", options, "-l", str(self.folder / "postgres.log"), "start")

    def stop(self, mode: StopMode = "fast") -> None:
        """``fast`` ends every session cleanly; ``immediate`` kills the server outright
        (as a crash would: the next start recovers from the WAL)."""
        self.pg_ctl("-m", mode, "stop")

    @property
    def dsn(self) -> str:
        return f"postgresql://gatehold@127.0.0.1:{self.port}/postgres"


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


@contextmanager
def started_cluster(prefix: str = "gatehold-pg-") -> Iterator[Cluster]:
    """A new cluster (initdb) in a temporary folder, started; removed afterwards.

    A missing PostgreSQL installation is a missing component (``require_component``).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        require_component("PostgreSQL", "install the postgresql package (initdb, pg_ctl)")
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "gatehold"]
    done = subprocess.run(
        _as_postgres(initdb), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    running = Cluster(bin_dir, folder, free_port())
    running.start()
    try:
        yield running
    finally:
        subprocess.run(
            _as_postgres(
                [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
