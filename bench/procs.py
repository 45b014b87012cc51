"""Processes the benchmark starts: pinned with ``taskset``, measured, and stopped by PID."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MIB = 1024 * 1024


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def online_cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (read from /proc, no extra tools)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of one process, 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> tuple[float, float]:
    """CPU time (user + system) of ``pids``: their main threads, and all their other threads.

    The main thread of a Python server runs its event loop; the others are helpers
    (Gatehold's audit writer and SQLite driver threads). 0 for a process that is gone.
    """
    main = other = 0.0
    for pid in pids:
        try:
            total = _ticks(Path(f"/proc/{pid}/stat")) / _TICK
            own = _ticks(Path(f"/proc/{pid}/task/{pid}/stat")) / _TICK
        except OSError:
            continue
        main, other = main + own, other + max(total - own, 0.0)
    return main, other


def _ticks(stat: Path) -> int:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


@dataclass
class Proc:
    """One started server (and, through /proc, its children)."""

    name: str
    popen: subprocess.Popen[bytes]
    cpus: str
    log: Path
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return [self.pid, *children_of(self.pid)]

    def rss(self) -> int:
        """VmRSS of the process plus all its children (workers)."""
        return sum(rss_bytes(pid) for pid in self.pids())

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Procs:
    """Starts processes and stops exactly those again (use as a context manager)."""

    log_dir: Path
    started: list[Proc] = field(default_factory=list)
    pin: bool = True

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        command = [*pin_prefix(cpus, self.pin), *argv]
        with log.open("ab") as sink:
            popen = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches us; we stop them in order
            )
        proc = Proc(name, popen, cpus if self.pin else "any", log, stop_signal)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 10.0) -> None:
        """Signal the process, wait, then kill it and any child it left behind, by PID."""
        family = proc.pids()
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, proc.stop_signal)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)
        deadline = time.monotonic() + 5
        for pid in family[1:]:
            while _exists(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _exists(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


def _exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pin_prefix(cpus: str, pin: bool = True) -> list[str]:
    """``taskset -c CPUS`` when pinning is possible, else nothing."""
    if not pin or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpus]


def wait_http(
    url: str,
    proc: Proc,
    *,
    headers: Mapping[str, str] | None = None,
    expect: int = 200,
    timeout: float = 30.0,
) -> None:
    """Poll ``url`` until it answers ``expect``; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early; see {proc.log}:\n{_tail(proc.log)}")
        try:
            status, _body = get(url, headers=headers, timeout=2)
        except OSError as error:
            last = str(error)
        else:
            if status == expect:
                return
            last = f"status {status}"
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready after {timeout:.0f} s ({last})")


def get(
    url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """``GET`` a plain-HTTP loopback URL; returns (status, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target or "/", headers=dict(headers or {}))
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
