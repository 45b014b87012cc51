"""Measurements besides wrk: RSS over a download, Gatehold's stage metrics, the audit writer."""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from procs import MIB, Proc, get

from gateway.metrics import STAGES

T = TypeVar("T")
FLAT = 16 * MIB
"""Most a server's RSS may grow while relaying 200 MiB and still count as flat."""


@dataclass(frozen=True)
class RssTrace:
    """A server's RSS before, at its peak during, and after one large download."""

    before: int
    peak: int
    after: int
    seconds: float
    received: int

    @property
    def growth(self) -> int:
        return self.peak - self.before

    @property
    def flat(self) -> bool:
        return self.growth <= FLAT and self.after - self.before <= FLAT

    @property
    def mib_per_s(self) -> float:
        return self.received / MIB / self.seconds if self.seconds else 0.0


def peak_rss_while(proc: Proc, work: Callable[[], T], every: float = 0.02) -> tuple[T, int]:
    """Run ``work`` while sampling ``proc``'s RSS (children included); (result, peak)."""
    peak = proc.rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.rss())
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return work(), peak
    finally:
        stop.set()
        sampler.join()


def big_download(url: str, headers: dict[str, str], proc: Proc) -> RssTrace:
    """Fetch ``url`` once, reading and discarding it, while sampling the server's RSS."""
    before = proc.rss()

    def fetch() -> tuple[int, float]:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.netloc, timeout=60)
        started = time.perf_counter()
        received = 0
        try:
            connection.request("GET", parts.path, headers=headers)
            answer = connection.getresponse()
            while chunk := answer.read(1024 * 1024):
                received += len(chunk)
        finally:
            connection.close()
        return received, time.perf_counter() - started

    (received, seconds), peak = peak_rss_while(proc, fetch)
    time.sleep(1.0)
    return RssTrace(before, peak, proc.rss(), seconds, received)


def scrape_stages(admin_url: str) -> dict[str, tuple[float, float]]:
    """``{stage: (sum of seconds, count)}`` of ``gatehold_stage_seconds`` from /metrics."""
    _status, body = get(f"{admin_url}/metrics")
    found = {stage: [0.0, 0.0] for stage in STAGES}
    for line in body.decode().splitlines():
        for suffix, index in (("_sum", 0), ("_count", 1)):
            prefix = f"gatehold_stage_seconds{suffix}{{"
            if line.startswith(prefix):
                labels, _, value = line[len(prefix) :].partition("} ")
                stage = labels.partition('stage="')[2].partition('"')[0]
                if stage in found:
                    found[stage][index] = float(value)
    return {stage: (pair[0], pair[1]) for stage, pair in found.items()}


def run_audit_writer(
    python: str, script: Path, prefix: Sequence[str], *, records: int = 20000, producers: int = 200
) -> tuple[float, str]:
    """``audit_writer.py`` once (20,000 records, 200 producers): (records/s, batch summary).

    With one producer every record is its own durable commit: 1000 / records/s is the
    time one commit takes, in ms."""
    argv = [*prefix, python, str(script), "--records", str(records), "--producers", str(producers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or len(lines) < 3:
        return 0.0, f"audit_writer.py failed: {done.stderr[-300:]!r}"
    # records producers seconds records/s batches mean-batch max-batch ms/batch
    values = lines[-1].split()
    summary = f"{values[4]} batches, mean {values[5]}, max {values[6]}, {values[7]} ms/batch"
    return float(values[3].replace(",", "")), summary


def touch_every_session(
    base_url: str, path: str, tokens_file: Path, cookie: str, *, workers: int = 16
) -> tuple[float, dict[int, int]]:
    """Send one request with each session, ``workers`` at a time; (seconds, status counts).

    After this every session has been loaded and cached by the gateway: "active".
    """
    tokens = [line for line in tokens_file.read_text().splitlines() if line]
    parts = urlsplit(base_url)
    local = threading.local()
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def one(index_token: tuple[int, str]) -> None:
        index, token = index_token
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port, timeout=30
            )
        connection.request(
            "GET", f"{path}{index % 1000 + 1}", headers={"Cookie": f"{cookie}={token}"}
        )
        response = connection.getresponse()
        response.read()
        with lock:
            counts[response.status] = counts.get(response.status, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(tokens)))
    return time.monotonic() - started, counts
