"""Memory of the gateway while a 200 MiB upload is checked and virus-scanned.

Starts a real ``clamd`` (with the tests' EICAR database, ``tests/support/clamav.py``),
the bench app (``bench/upstream.py``, which counts what it receives) and ``gatehold
serve`` with an upload route that scans, then streams a 200 MiB text file through the
gateway as a form (POST) and as a raw body (PUT), sampling the gateway's memory every
50 ms. Prints its RSS before, the highest seen during, and after each upload, with
anonymous memory (the heap) apart from file pages: the body waits in a temporary file,
and a POST form is also read back from it, one window at a time, to look for a
``_method`` override. Both stay flat (200 MiB: PUT RSS 102.8 -> peak 107.3 MiB, POST
104.8 -> 107.1 MiB; before the form was read in windows, through a memory map of the
file, the POST peaked at 306.4 MiB).

    python bench/upload_scan_rss.py [--mib 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench helpers, and tests/support

from gatehold_env import COOKIE, gatehold_bin, prepare  # noqa: E402
from procs import Procs, free_port, wait_http  # noqa: E402

from gateway.clamd import Clamd  # noqa: E402
from tests.support.clamav import CLAMD, write_config  # noqa: E402

LINE = b"gatehold upload benchmark: a clean line of text, nothing to find here.\n"
BOUNDARY = "----gateholdBenchBoundary"
MIB = 1024 * 1024


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of ``pid`` in bytes."""
    values = {"VmRSS:": 0, "RssAnon:": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line else ""
        if key in values:
            values[key] = int(line.split()[1]) * 1024
    return values["VmRSS:"], values["RssAnon:"]


class Sampler:
    """The highest RSS and anonymous memory of a process, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, anon = memory(self.pid)
            self.peak = (max(self.peak[0], rss), max(self.peak[1], anon))
            time.sleep(0.05)


async def text_file(size: int) -> AsyncIterator[bytes]:
    piece = LINE * (MIB // len(LINE))
    sent = 0
    while sent < size:
        chunk = piece[: size - sent]
        sent += len(chunk)
        yield chunk


async def form(size: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    async for chunk in text_file(size):
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def upload(url: str, token: str, method: str, size: int) -> tuple[int, str, float]:
    if method == "POST":
        body, content_type = form(size), f"multipart/form-data; boundary={BOUNDARY}"
    else:
        body, content_type = text_file(size), "text/plain"
    headers = {"Cookie": f"{COOKIE}={token}", "Content-Type": content_type}
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.request(method, url, data=body, headers=headers) as answer:
            text = await answer.text()
            return answer.status, text[:200], time.monotonic() - started


def start_clamd(procs: Procs, folder: Path, stream_max: str) -> str:
    conf = write_config(folder, stream_max=stream_max)
    procs.start("clamd", [CLAMD, "--config-file", str(conf)], cpus="0")
    socket = str(folder / "clamd.sock")
    deadline = time.monotonic() + 60
    while not asyncio.run(Clamd(socket, timeout=1).ping()):
        if time.monotonic() > deadline:
            raise RuntimeError("clamd did not answer")
        time.sleep(0.1)
    return socket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args()
    size = args.mib * MIB
    limit = f"{args.mib + 16}M"
    with tempfile.TemporaryDirectory() as scratch, Procs(Path(scratch)) as procs:
        folder = Path(scratch)
        socket = start_clamd(procs, folder / "clamd", limit)
        app_port, port = free_port(), free_port()
        app = procs.start(
            "upstream",
            [sys.executable, str(BENCH / "upstream.py"), "--port", str(app_port)],
            cpus="1",
        )
        wait_http(f"http://127.0.0.1:{app_port}/api/items/1", app)
        route = {
            "name": "upload",
            "match": {"path": "/upload", "methods": ["POST", "PUT"]},
            "upstream": "app",
            "max_body": f"{args.mib + 1}MiB",
            "upload": {
                "types": ["txt"],
                "max_file": f"{args.mib}MiB",
                "scan": {"on_unavailable": "refuse"},
            },
        }
        setup = prepare(
            folder / "gatehold",
            upstream_url=f"http://127.0.0.1:{app_port}",
            port=port,
            many_sessions=0,
            extra_routes=[route],
            extra_settings={"scanner": {"clamd_socket": socket, "timeout": "60s"}},
        )
        gateway = procs.start(
            "gatehold", [gatehold_bin(), "serve", "--config", str(setup.config)], cpus="1"
        )
        wait_http(f"http://127.0.0.1:{port}/.gatehold/health", gateway)
        print(f"upload of {args.mib} MiB through the gateway, scanned by clamd")
        print(f"{'':6} {'status':>6} {'seconds':>8} {'RSS before':>11} {'peak':>8} "
              f"{'after':>8} {'anon before':>12} {'peak':>8}")  # fmt: skip
        for method in ("PUT", "POST"):
            before = memory(gateway.pid)
            with Sampler(gateway.pid) as sampler:
                status, text, seconds = asyncio.run(
                    upload(f"http://127.0.0.1:{port}/upload", setup.token, method, size)
                )
            after = memory(gateway.pid)
            print(
                f"{method:6} {status:>6} {seconds:>8.1f} {before[0] / MIB:>9.1f}Mi "
                f"{sampler.peak[0] / MIB:>6.1f}Mi {after[0] / MIB:>6.1f}Mi "
                f"{before[1] / MIB:>10.1f}Mi {sampler.peak[1] / MIB:>6.1f}Mi"
            )
            if status != 200:
                print(f"  answer: {text}")


if __name__ == "__main__":
    main()
