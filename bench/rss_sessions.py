"""RSS of one ``gatehold serve`` process: at start, and with N sessions all active.

The bench's settings and rules (no OIDC provider, no passwords, passkeys or mail
server): what a process of that configuration holds before its first request, after
one request with each of N sessions (all cached), and which of the optional libraries
it imported (read from ``/proc/PID/maps``: a library's native parts are mapped once
imported).

    python bench/rss_sessions.py                  # 10,000 sessions
    python bench/rss_sessions.py --sessions 0     # only the RSS at start
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import gatehold_env
from measure import touch_every_session
from procs import MIB, Procs, free_port, wait_http

BENCH = Path(__file__).resolve().parent
PY = sys.executable
ITEMS = "/api/items/"


def rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="gatehold-rss-"))
    (scratch / "logs").mkdir()
    try:
        with Procs(scratch / "logs", pin=False) as procs:
            up_port = free_port()
            upstream = procs.start(
                "upstream", [PY, str(BENCH / "upstream.py"), "--port", str(up_port)], cpus=""
            )
            wait_http(f"http://127.0.0.1:{up_port}{ITEMS}1", upstream)
            port = free_port()
            setup = gatehold_env.prepare(
                scratch / "gatehold",
                upstream_url=f"http://127.0.0.1:{up_port}",
                port=port,
                many_sessions=args.sessions,
            )
            env = {
                "GATEHOLD_SERVER__PORT": str(port),
                "GATEHOLD_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
            }
            argv = [gatehold_env.gatehold_bin(), "serve", "--config", str(setup.config)]
            proc = procs.start("gatehold", argv, cpus="", env=env, stop_signal=signal.SIGINT)
            cookie = {"Cookie": f"{gatehold_env.COOKIE}={setup.token}"}
            wait_http(f"http://127.0.0.1:{port}{ITEMS}1", proc, headers=cookie)
            print(
                f"after the first request: RSS {proc.rss() / MIB:.1f} MiB "
                f"(heap {rss_anon(proc.pid) / MIB:.1f} MiB)"
            )
            if args.sessions and setup.many_tokens_file is not None:
                seconds, statuses = touch_every_session(
                    f"http://127.0.0.1:{port}", ITEMS, setup.many_tokens_file, gatehold_env.COOKIE
                )
                print(
                    f"after one request with each of {args.sessions:,} sessions ({seconds:.1f} s, "
                    f"{statuses}): RSS {proc.rss() / MIB:.1f} MiB "
                    f"(heap {rss_anon(proc.pid) / MIB:.1f} MiB)"
                )
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            optional = (
                "zxcvbn",
                "webauthn",
                "cbor2",
                "authlib",
                "argon2",
                "pyotp",
                "segno",
                "asyncpg",
                "aiosmtplib",
                "admin_ui",
            )
            # Pure-Python packages leave no mapping; their compiled parts (or none) do.
            print("native parts mapped: " + ", ".join(n for n in optional if f"/{n}" in maps))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
