"""Soak: mixed traffic against ``gatehold serve --workers 2`` for minutes; memory, errors, p99.

Starts the bench app (``bench/upstream.py``: items, uploads, an echoing WebSocket) and
``gatehold serve --workers 2`` in front of it, then runs virtual users that each pick,
at random by weight, one of:

* ``allowed``   ``GET /api/items/{id}`` with a session (owner looked up, audited, relayed)
* ``denied``    no route, no credential, a method the route lacks, an ambiguous target
* ``login``     a magic-link sign-in through the mail outbox, then a request with it
* ``upload``    a multipart text file posted to an upload route (type checked by content)
* ``websocket`` open ``/ws`` through the gateway, exchange five messages, close

Every answer is checked (status, and the echo or byte count); anything else is an
error, counted by kind. The RSS of each gateway process is sampled every two seconds.
After the run it writes ``soak.json``, ``soak.md`` and ``soak.png`` (RSS per process,
p99 latency per kind and throughput over time) to ``bench/results/soak-<time>/`` and
prints the summary. RSS growth is measured from the end of the warm-up (the first
fifth of the run) to the end; the goal is under 10%.

    python bench/soak.py                # 10 minutes
    python bench/soak.py --minutes 1    # a short run
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from yarl import URL

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

from gatehold_env import COOKIE, gatehold_bin, prepare  # noqa: E402
from procs import MIB, Proc, Procs, free_port, rss_bytes, wait_http  # noqa: E402

RESULTS = BENCH / "results"
WEIGHTS = {"allowed": 60, "denied": 20, "upload": 8, "websocket": 8, "login": 4}
PEOPLE = 256
"""Distinct people who sign in (returning ones, mostly, as in real use)."""
USERS_MAX = 64
DISTINCT_CLIENTS = False
"""Sign each person in from an address of their own (``X-Forwarded-For`` from a trusted
loopback proxy), as people do, rather than everyone from 127.0.0.1: then no sign-in
rate-limit bucket holds every sign-in of the last hour (``bench/login_memory.py``)."""
BUCKET = 10.0
"""Seconds per point of the time series (throughput, p99)."""
SAMPLE_EVERY = 2.0
GOAL_GROWTH = 0.10
BIND = "__Host-gatehold-bind=soak-browser"
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
LINK = re.compile(r"/\.gatehold/login/magic/confirm\?token=([A-Za-z0-9_\-.~%]+)")
BOUNDARY = "----gateholdSoakBoundary"
DENIED = (  # (method, target, with a session, expected status)
    ("GET", "/nowhere/at/all", True, 404),
    ("GET", "/api/items/7", False, 401),
    ("DELETE", "/api/items/7", True, 405),
    ("GET", "/api/items/7%2F..%2F8", True, 400),
)


@dataclass
class Tally:
    """What the virtual users saw: one entry per operation, and the errors by kind."""

    started: float
    done: list[tuple[float, str, float]] = field(default_factory=list)
    """(seconds since start, kind, latency in ms) of every operation that succeeded."""
    errors: Counter[str] = field(default_factory=Counter)
    error_times: list[float] = field(default_factory=list)

    def ok(self, kind: str, began: float) -> None:
        now = time.monotonic()
        self.done.append((now - self.started, kind, (now - began) * 1000))

    def failed(self, what: str) -> None:
        self.errors[what] += 1
        self.error_times.append(time.monotonic() - self.started)


class Failed(Exception):
    """An operation got an answer other than the one it must get."""


@dataclass
class Target:
    url: str
    token: str
    outbox: Path
    upload_limit: int = 64 * 1024


async def allowed(http: aiohttp.ClientSession, target: Target, rng: random.Random) -> None:
    path = f"/api/items/{rng.randint(1, 1000)}"
    async with http.get(target.url + path, headers=_session(target.token)) as answer:
        body = await answer.read()
        _expect(answer.status == 200 and b'"tenant":"acme"' in body, f"status {answer.status}")


async def denied(http: aiohttp.ClientSession, target: Target, rng: random.Random) -> None:
    method, path, signed_in, status = rng.choice(DENIED)
    headers = _session(target.token) if signed_in else {}
    headers["Accept"] = "application/json"
    url = target.url + path
    async with http.request(method, URL(url, encoded=True), headers=headers) as a:
        problem = await a.json(content_type=None)
        _expect(a.status == status and "type" in problem, f"{path}: status {a.status}")


async def upload(http: aiohttp.ClientSession, target: Target, rng: random.Random) -> None:
    size = rng.randint(1024, target.upload_limit)
    line = b"a line of plain text for the soak upload\n"
    content = (line * (size // len(line) + 1))[:size]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="soak.txt"'
        "\r\nContent-Type: text/plain\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{BOUNDARY}--\r\n".encode()
    headers = _session(target.token) | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with http.post(target.url + "/upload", data=body, headers=headers) as answer:
        text = await answer.text()
        _expect(answer.status == 200 and '"bytes"' in text, f"status {answer.status}")


async def websocket(http: aiohttp.ClientSession, target: Target, rng: random.Random) -> None:
    headers = _session(target.token) | {"Origin": target.url}
    async with http.ws_connect(target.url + "/ws", headers=headers, timeout=10) as socket:
        for n in range(5):
            text = f"soak {rng.random()} {n}"
            await socket.send_str(text)
            echo = await socket.receive(timeout=10)
            _expect(echo.type is aiohttp.WSMsgType.TEXT and echo.data == text, "no echo")
        await socket.close()


async def login(http: aiohttp.ClientSession, target: Target, rng: random.Random) -> None:
    """A magic-link sign-in as a browser does it: ask, read the mail, confirm, use.

    Each virtual user signs in people of its own (``PEOPLE`` in all), so two never ask
    for the same person's link at once."""
    number = rng.randrange(PEOPLE // USERS_MAX) * USERS_MAX + getattr(rng, "user", 0)
    address = f"soak{number}@soak.test"  # signed up at their first sign-in
    client = {"X-Forwarded-For": f"10.0.{number // 250}.{number % 250 + 1}"}
    asked = await http.post(
        target.url + "/.gatehold/login/magic",
        data={"email": address, "rd": "/"},
        headers={"Cookie": BIND} | (client if DISTINCT_CLIENTS else {}),
    )
    asked.release()
    _expect(asked.status == 200, f"asking: status {asked.status}")
    token = await _link_for(target.outbox, address)
    confirm_url = f"{target.url}/.gatehold/login/magic/confirm?token={token}"
    async with http.get(confirm_url, headers={"Cookie": BIND}) as page:
        nonce = NONCE.search(await page.text())
        _expect(page.status == 200 and nonce is not None, f"confirm page: {page.status}")
        confirm = page.cookies["__Host-gatehold-confirm"].value
    assert nonce is not None
    async with http.post(
        target.url + "/.gatehold/login/magic/confirm",
        data={"token": token, "nonce": nonce.group(1)},
        headers={"Cookie": f"__Host-gatehold-confirm={confirm}; {BIND}"},
        allow_redirects=False,
    ) as signed_in:
        _expect(signed_in.status in (302, 303), f"confirming: status {signed_in.status}")
        session = signed_in.cookies[COOKIE].value
    async with http.get(target.url + "/api/items/1", headers=_session(session)) as used:
        _expect(used.status == 200, f"signed in, then: status {used.status}")


async def _link_for(outbox: Path, address: str) -> str:
    """The token mailed to ``address`` (its mail is removed once read)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for mail in outbox.glob("*.eml") if outbox.exists() else ():
            try:
                message = email.message_from_bytes(mail.read_bytes())
            except OSError:
                continue
            if address not in str(message.get("To", "")):
                continue
            found = LINK.search(_text(message))
            mail.unlink(missing_ok=True)
            if found:
                return found.group(1)
        await asyncio.sleep(0.05)
    raise Failed("no magic link in the outbox")


def _text(message: email.message.Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    found = (part.get_payload(decode=True) for part in parts)
    return "".join(p.decode(errors="replace") for p in found if isinstance(p, bytes))


def _session(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}"}


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


Operation = Callable[[aiohttp.ClientSession, Target, random.Random], Awaitable[None]]
OPERATIONS: dict[str, Operation] = {
    "allowed": allowed,
    "denied": denied,
    "upload": upload,
    "websocket": websocket,
    "login": login,
}


async def virtual_user(
    seed: int,
    target: Target,
    tally: Tally,
    until: float,
    http: aiohttp.ClientSession,
    mix: dict[str, int],
) -> None:
    rng = random.Random(seed)
    rng.user = seed  # type: ignore[attr-defined]  # whose people it signs in (``login``)
    kinds, weights = list(mix), list(mix.values())
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        began = time.monotonic()
        try:
            await asyncio.wait_for(OPERATIONS[kind](http, target, rng), timeout=30)
        except Failed as failed:
            tally.failed(f"{kind}: {failed}")
        except (aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as error:
            tally.failed(f"{kind}: {type(error).__name__}")
        else:
            tally.ok(kind, began)


async def drive(target: Target, users: int, seconds: float, mix: dict[str, int]) -> Tally:
    tally = Tally(time.monotonic())
    until = tally.started + seconds
    connector = aiohttp.TCPConnector(limit=users)
    timeout = aiohttp.ClientTimeout(total=60)
    jar = aiohttp.DummyCookieJar()  # cookies go by hand, as each operation needs them
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=jar) as h:
        await asyncio.gather(*(virtual_user(n, target, tally, until, h, mix) for n in range(users)))
    return tally


class RssSampler:
    """The RSS of each of a process's family (the serve process and its workers)."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> RssSampler:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.started
            self.samples.append((now, {pid: rss_bytes(pid) for pid in self.proc.pids()}))
            self._stop.wait(SAMPLE_EVERY)


def start_servers(
    procs: Procs, folder: Path, command: list[str] | None = None, workers: int = 2
) -> tuple[Target, Proc]:
    """The bench app and ``gatehold serve`` (or ``command`` given the same arguments)."""
    app_port, port = free_port(), free_port()
    app = procs.start(
        "upstream", [sys.executable, str(BENCH / "upstream.py"), "--port", str(app_port)], cpus="0"
    )
    wait_http(f"http://127.0.0.1:{app_port}/api/items/1", app)
    routes: list[dict[str, object]] = [
        {
            "name": "upload",
            "match": {"path": "/upload", "methods": ["POST"]},
            "upstream": "app",
            "max_body": "1MiB",
            "upload": {"types": ["txt"], "max_file": "512KiB"},
        },
        {"name": "socket", "match": {"path": "/ws", "methods": ["GET"]}, "upstream": "app"}
        | {"websocket": True},
    ]
    links = {
        "per_email_per_hour": 1_000_000,
        "per_client_per_hour": 1_000_000,
        "self_signup": {"soak.test": {"tenant": "acme", "role": "reader"}},
    }
    setup = prepare(
        folder,
        upstream_url=f"http://127.0.0.1:{app_port}",
        port=port,
        many_sessions=0,
        extra_routes=routes,
        extra_settings={"auth": {"magic_link": links}}
        | ({"server": {"trusted_proxies": ["127.0.0.1"]}} if DISTINCT_CLIENTS else {}),
    )
    argv = [*(command or [gatehold_bin()]), "serve", "--config", str(setup.config)]
    gateway = procs.start("gatehold", [*argv, "--workers", str(workers)], cpus="0,1")
    wait_http(f"http://127.0.0.1:{port}/.gatehold/health", gateway)
    deadline = time.monotonic() + 30
    while len(gateway.pids()) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    target = Target(f"http://127.0.0.1:{port}", setup.token, folder / "data" / "outbox")
    return target, gateway


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _p99(values: list[float]) -> float | None:
    found = p99(values)
    return None if found is None else round(found, 1)


def summarise(
    tally: Tally, samples: list[tuple[float, dict[int, int]]], seconds: float, names: dict[int, str]
) -> dict[str, object]:
    warmup = seconds / 5
    window = max(seconds / 10, 2 * SAMPLE_EVERY)
    growth: dict[str, dict[str, float]] = {}
    for pid, name in names.items():
        after = [(t, s[pid]) for t, s in samples if s.get(pid)]
        base = [r for t, r in after if warmup <= t < warmup + window]
        end = [r for t, r in after if t >= seconds - window]
        if base and end:
            first, last = sorted(base)[len(base) // 2], sorted(end)[len(end) // 2]
            growth[name] = {
                "pid": pid,
                "rss_mib_after_warmup": round(first / MIB, 1),
                "rss_mib_at_end": round(last / MIB, 1),
                "peak_mib": round(max(r for _, r in after) / MIB, 1),
                "growth_percent": round((last - first) / first * 100, 2),
            }
    buckets = max(int(seconds // BUCKET), 1)  # whole buckets only
    series: list[dict[str, object]] = []
    for b in range(buckets):
        inside = [(k, ms) for t, k, ms in tally.done if b * BUCKET <= t < (b + 1) * BUCKET]
        errors = sum(1 for t in tally.error_times if b * BUCKET <= t < (b + 1) * BUCKET)
        series.append(
            {
                "t": b * BUCKET,
                "ops_per_s": round(len(inside) / BUCKET, 1),
                "errors": errors,
                "p99_ms": {kind: _p99([ms for k, ms in inside if k == kind]) for kind in WEIGHTS}
                | {"all": _p99([ms for _, ms in inside])},
            }
        )
    by_kind = Counter(k for _, k, _ in tally.done)
    return {
        "seconds": round(seconds, 1),
        "operations": len(tally.done),
        "operations_by_kind": dict(by_kind),
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "throughput_ops_per_s": round(len(tally.done) / seconds, 1),
        "p99_ms_overall": {
            kind: _p99([ms for _, k, ms in tally.done if k == kind]) for kind in WEIGHTS
        },
        "rss": growth,
        "rss_goal_percent": GOAL_GROWTH * 100,
        "warmup_seconds": round(warmup, 1),
        "series": series,
        "rss_samples": [
            {
                "t": round(t, 1),
                "mib": {names.get(p, str(p)): round(r / MIB, 2) for p, r in s.items()},
            }
            for t, s in samples
        ],
    }


def plot(summary: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, latency, rate) = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    samples: list[dict[str, object]] = summary["rss_samples"]  # type: ignore[assignment]
    names = sorted({n for s in samples for n in s["mib"]})  # type: ignore[attr-defined]
    for name in names:
        points = [(s["t"], s["mib"].get(name)) for s in samples]  # type: ignore[attr-defined]
        memory.plot([t for t, m in points if m], [m for _, m in points if m], label=name)
    memory.axvline(float(summary["warmup_seconds"]), color="grey", linestyle=":", label="warm-up")  # type: ignore[arg-type]
    memory.set_ylabel("RSS (MiB)")
    memory.set_title("Gatehold --workers 2 under mixed traffic: memory per process")
    memory.legend(fontsize="small")
    series: list[dict[str, object]] = summary["series"]  # type: ignore[assignment]
    times = [float(s["t"]) + BUCKET / 2 for s in series]  # type: ignore[arg-type]
    for kind in [*WEIGHTS, "all"]:
        values = [s["p99_ms"][kind] for s in series]  # type: ignore[index]
        shown = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
        latency.plot([t for t, _ in shown], [v for _, v in shown], label=kind, marker=".")
    latency.set_ylabel(f"p99 latency (ms), per {BUCKET:.0f} s")
    latency.set_yscale("log")
    latency.legend(fontsize="small", ncol=3)
    rate.plot(times, [s["ops_per_s"] for s in series], label="operations/s")
    rate.plot(times, [s["errors"] for s in series], label=f"errors per {BUCKET:.0f} s")
    rate.set_ylabel("throughput")
    rate.set_xlabel("seconds since start")
    rate.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(summary: dict[str, object], command: str) -> list[str]:
    rss: dict[str, dict[str, float]] = summary["rss"]  # type: ignore[assignment]
    lines = [
        "# Soak: mixed traffic against `gatehold serve --workers 2`",
        "",
        f"- command: `{command}`",
        f"- duration {summary['seconds']} s, {summary['operations']} operations "
        f"({summary['throughput_ops_per_s']} /s): {summary['operations_by_kind']}",
        f"- errors: {summary['errors']} {summary['errors_by_kind'] or ''}",
        f"- p99 over the run (ms): {summary['p99_ms_overall']}",
        f"- RSS growth after warm-up ({summary['warmup_seconds']} s), goal under "
        f"{summary['rss_goal_percent']:.0f}%:",
    ]
    for name, each in rss.items():
        verdict = "ok" if each["growth_percent"] < GOAL_GROWTH * 100 else "OVER GOAL"
        lines.append(
            f"  - {name} (pid {each['pid']:.0f}): {each['rss_mib_after_warmup']} -> "
            f"{each['rss_mib_at_end']} MiB ({each['growth_percent']:+.2f}%, peak "
            f"{each['peak_mib']} MiB) {verdict}"
        )
    lines.append("- plot: soak.png (RSS per process, p99 per kind, throughput and errors)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--users",
        type=int,
        default=16,
        choices=range(1, USERS_MAX + 1),
        metavar="1..64",
        help="virtual users at once",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(WEIGHTS),
        help="leave one kind of traffic out (repeatable), to see what memory grows with",
    )
    args = parser.parse_args()
    seconds = args.minutes * 60
    out = args.out or RESULTS / time.strftime("soak-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, Procs(Path(scratch), pin=False) as procs:
        target, gateway = start_servers(procs, Path(scratch) / "gatehold")
        pids = gateway.pids()
        names = {pids[0]: "serve (worker 1)"} | {
            pid: f"worker {n}" for n, pid in enumerate(pids[1:], start=2)
        }
        print(f"soak: {args.minutes:g} min, {args.users} virtual users, against {target.url}")
        with RssSampler(gateway) as sampler:
            mix = {kind: w for kind, w in WEIGHTS.items() if kind not in args.without}
            tally = asyncio.run(drive(target, args.users, seconds, mix))
        alive = gateway.alive()
    summary = summarise(tally, sampler.samples, seconds, names)
    summary["gateway_alive_at_end"] = alive
    command = "python bench/soak.py " + " ".join(sys.argv[1:])
    (out / "soak.json").write_text(json.dumps(summary, indent=1))
    lines = report(summary, command.strip())
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    plot(summary, out / "soak.png")
    print("\n".join(lines))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
