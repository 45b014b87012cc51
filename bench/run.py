"""Gatehold side by side with nginx, nginx + auth_request and a bare aiohttp proxy.

Every figure that matters is a ratio between rows measured in the same run, in
interleaved rounds (A, B, C, … then again), so a noisy machine slows every row alike.

    python bench/run.py             # the full comparison (about 6 minutes)
    python bench/run.py --quick     # floor vs Gatehold, 1 process (under 2 minutes)
    python bench/run.py --profile   # py-spy on Gatehold under load; top frames

Needs ``wrk`` and ``nginx`` (``make bench-deps``); ``--profile`` needs ``py-spy``.
Results go to ``bench/results/`` (latest.md, quick.md, profile.txt).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import front_proxies
import gatehold_env
import nginx
import profile_report
import shadow_ab
from measure import (
    RssTrace,
    big_download,
    peak_rss_while,
    run_audit_writer,
    scrape_stages,
    touch_every_session,
)
from procs import (
    MIB,
    Proc,
    Procs,
    cpu_seconds,
    free_port,
    online_cpus,
    pin_prefix,
    rss_bytes,
    wait_http,
)
from wrk import WrkResult, median, run_wrk, write_script

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PY = sys.executable
ITEMS = "/api/items/"
IDS = 1000


@dataclass(frozen=True)
class Pinning:
    """Where servers and the load generator run."""

    servers: str
    load: str
    workers: str
    pin: bool

    @classmethod
    def for_machine(cls, enabled: bool) -> Pinning:
        cpus = online_cpus()
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            every = ",".join(map(str, cpus))
            return cls(every, every, every, False)
        servers, load = str(cpus[0]), str(cpus[1])
        return cls(servers, load, f"{servers},{load}", True)

    def describe(self) -> str:
        if not self.pin:
            return "pinning: none (fewer than 2 CPUs, no taskset, or --no-pin)"
        return (
            f"pinning: servers (upstream, proxies, auth service) on CPU {self.servers}; "
            f"wrk and this script on CPU {self.load}; Gatehold --workers 2 on CPUs "
            f"{self.workers}, so its second worker shares CPU {self.load} with wrk"
        )


@dataclass
class Row:
    """One proxy (or none, for ``direct``) under test, and what was measured through it."""

    key: str
    label: str
    port: int
    procs: list[Proc]
    """The processes whose memory counts for this row (the upstream's only for ``direct``)."""
    loaded: list[WrkResult] = field(default_factory=list)
    unloaded: list[WrkResult] = field(default_factory=list)
    stream: list[WrkResult] = field(default_factory=list)
    rss_each: list[tuple[str, int, int]] = field(default_factory=list)
    """(name, pid, RSS) of each of the row's processes, read by ``measure_rss``."""
    cpu: list[RequestCpu] = field(default_factory=list)
    """CPU per request in each loaded round (the row's processes and the upstream)."""
    decider: Proc | None = None
    """For a forward-auth row: the Gatehold that decides (also one of ``procs``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def median(self, phase: str, figure: Callable[[WrkResult], float]) -> float:
        results: list[WrkResult] = getattr(self, phase)
        return median([figure(r) for r in results])

    def ratio(self, base: Row, phase: str, figure: Callable[[WrkResult], float]) -> float:
        """Median over rounds of this row's figure over the base row's in the same round."""
        pairs = zip(getattr(self, phase), getattr(base, phase), strict=True)
        return median([figure(mine) / figure(theirs) for mine, theirs in pairs if figure(theirs)])

    def pids(self) -> list[int]:
        return [pid for proc in self.procs for pid in proc.pids()]

    def measure_rss(self) -> None:
        self.rss_each = [
            (proc.name, pid, rss_bytes(pid)) for proc in self.procs for pid in proc.pids()
        ]

    @property
    def rss(self) -> int:
        """VmRSS of all the row's processes, as last measured."""
        return sum(rss for _, _, rss in self.rss_each)

    def median_cpu(self) -> float:
        """Median over the loaded rounds of this row's own CPU per request, in µs."""
        return median([c.proxy for c in self.cpu]) if self.cpu else 0.0

    def added(self, base: Row, figure: Callable[[WrkResult], float]) -> float:
        """Median over rounds of a 1-connection figure above the base row's, in ms."""
        pairs = zip(self.unloaded, base.unloaded, strict=True)
        return median([figure(mine) - figure(theirs) for mine, theirs in pairs])


@dataclass(frozen=True)
class RequestCpu:
    """CPU time per request in one loaded run, in µs, from /proc (user + system)."""

    loop: float
    """The row's processes, main threads (for ``direct``: the upstream's)."""
    helpers: float
    """The row's processes, other threads (Gatehold: audit writer, SQLite driver)."""
    upstream: float
    """The upstream app, which shares the servers' CPU."""
    decider: float = 0.0
    """For a forward-auth row: the deciding Gatehold's share of ``loop + helpers``."""

    @property
    def proxy(self) -> float:
        return self.loop + self.helpers


def cpu_note(floor: Row, gatehold: Row) -> str:
    """Where the servers' CPU goes per request, Gatehold against the floor."""
    loop = median([c.loop for c in gatehold.cpu])
    helpers = median([c.helpers for c in gatehold.cpu])
    upstream = median([c.upstream for c in gatehold.cpu + floor.cpu])
    ratio = median(
        [g.proxy / f.proxy for g, f in zip(gatehold.cpu, floor.cpu, strict=True) if f.proxy]
    )
    return (
        f"- CPU µs/req: the row's own processes (user + system, from /proc), median of the "
        f"loaded rounds; the upstream adds {upstream:.0f} µs/req on the same CPU. Gatehold "
        f"(1 process): event loop {loop:.0f} + audit writer and SQLite threads {helpers:.0f} "
        f"µs/req, {ratio:.2f}× the floor's {floor.median_cpu():.0f}"
    )


def rss_note(rows: Sequence[Row]) -> str:
    """RSS of each process behind the rows that have more than one."""
    parts = []
    for row in rows:
        if len(row.rss_each) > 1:
            each = ", ".join(f"{name} {pid} {rss / MIB:.1f}" for name, pid, rss in row.rss_each)
            parts.append(f"{row.label}: {each}")
    return "- RSS MiB of each process, by name and pid: " + "; ".join(parts)


def rps(r: WrkResult) -> float:
    return r.rps


def mibs(r: WrkResult) -> float:
    return r.mib_per_s


def p50(r: WrkResult) -> float:
    return r.p50_ms


def p99(r: WrkResult) -> float:
    return r.p99_ms


@dataclass
class Bench:
    """What every mode shares: pinning, scratch folder, processes, upstream, Gatehold setup."""

    args: argparse.Namespace
    pinning: Pinning
    scratch: Path
    procs: Procs
    script: Path
    upstream: Proc
    upstream_port: int
    gatehold: gatehold_env.GateholdSetup

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{gatehold_env.COOKIE}={self.gatehold.token}"}

    def wrk(
        self,
        row: Row,
        *,
        connections: int,
        seconds: float,
        path: str = ITEMS,
        ids: int = IDS,
        tokens: Path | None = None,
    ) -> WrkResult:
        return run_wrk(
            self.script,
            row.url,
            path=path,
            ids=ids,
            tokens=tokens or self.gatehold.tokens_file,
            connections=connections,
            seconds=seconds,
            cpus=self.pinning.load,
            pin=self.pinning.pin,
        )

    def loaded(self, row: Row, *, seconds: float) -> WrkResult:
        """50 connections for ``seconds``; records the CPU per request in ``row.cpu``."""
        decider = row.decider.pids() if row.decider else []
        own, upstream = cpu_seconds(row.pids()), cpu_seconds(self.upstream.pids())
        deciding = sum(cpu_seconds(decider))
        result = self.wrk(row, connections=50, seconds=seconds)
        own_after, upstream_after = cpu_seconds(row.pids()), cpu_seconds(self.upstream.pids())
        deciding = sum(cpu_seconds(decider)) - deciding
        per_request = 1e6 / max(result.requests, 1)
        row.cpu.append(
            RequestCpu(
                loop=(own_after[0] - own[0]) * per_request,
                helpers=(own_after[1] - own[1]) * per_request,
                upstream=(sum(upstream_after) - sum(upstream)) * per_request,
                decider=deciding * per_request,
            )
        )
        return result

    def start(self, name: str, argv: Sequence[str]) -> Proc:
        """A server on the servers' CPU."""
        return self.procs.start(name, argv, cpus=self.pinning.servers)

    def start_gatehold(
        self,
        name: str,
        *,
        port: int,
        admin_port: int | None = None,
        workers: int = 1,
        config: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Proc:
        """``gatehold serve`` on ``port`` (settings file plus environment overrides)."""
        env = {
            "GATEHOLD_SERVER__PORT": str(port),
            "GATEHOLD_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        if admin_port is not None:
            env["GATEHOLD_SERVER__ADMIN_PORT"] = str(admin_port)
        env.update(extra_env or {})
        settings = config or self.gatehold.config
        argv = [gatehold_env.gatehold_bin(), "serve", "--config", str(settings)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        cpus = self.pinning.workers if workers > 1 else self.pinning.servers
        proc = self.procs.start(name, argv, cpus=cpus, env=env, stop_signal=signal.SIGINT)
        wait_http(f"http://127.0.0.1:{port}{ITEMS}1", proc, headers=self.cookie_header())
        if workers > 1:
            _wait_for(lambda: len(proc.pids()) >= workers, f"{name}: {workers} workers")
        return proc

    def start_forward_auth(self) -> list[Row]:
        """One Gatehold that only decides, behind nginx and behind Caddy (two rows).

        It trusts loopback as its front proxy (``server.trusted_proxies``) and shares the
        store, keys and rules of the other Gatehold rows: the same session, route, owner
        lookup and durable audit as the full-pipeline row.
        """
        config = gatehold_env.variant(
            self.gatehold,
            "forward-auth",
            {"server": {"trusted_proxies": ["127.0.0.1"]}, "forward_auth": {"enabled": True}},
        )
        gatehold_port = free_port()
        decider = self.start_gatehold("gatehold-fa", port=gatehold_port, config=config)
        rows = []
        nginx_port = free_port()
        conf = front_proxies.write_nginx(
            self.scratch / "nginx-fa",
            port=nginx_port,
            upstream_port=self.upstream_port,
            gatehold_port=gatehold_port,
        )
        front = self.start("nginx-fa", front_proxies.nginx_argv(conf))
        rows.append(
            Row(
                "nginx+fa",
                "nginx + Gatehold forward-auth",
                nginx_port,
                [front, decider],
                decider=decider,
            )
        )
        caddy_port = free_port()
        root = self.scratch / "caddy-fa"
        conf = front_proxies.write_caddy(
            root, port=caddy_port, upstream_port=self.upstream_port, gatehold_port=gatehold_port
        )
        front = self.procs.start(
            "caddy-fa",
            front_proxies.caddy_argv(conf),
            cpus=self.pinning.servers,
            env=front_proxies.caddy_env(root),
            cwd=root,
        )
        rows.append(
            Row(
                "caddy+fa",
                "Caddy + Gatehold forward-auth",
                caddy_port,
                [front, decider],
                decider=decider,
            )
        )
        for row in rows:
            wait_http(f"{row.url}{ITEMS}1", row.procs[0], headers=self.cookie_header())
        return rows

    def start_floor(self) -> tuple[Proc, int]:
        port = free_port()
        argv = [PY, str(BENCH / "floor_proxy.py"), "--port", str(port)]
        proc = self.start("floor", [*argv, "--upstream", self.upstream_url])
        wait_http(f"http://127.0.0.1:{port}{ITEMS}1", proc)
        return proc, port


@contextmanager
def opened_bench(args: argparse.Namespace, *, many_sessions: int) -> Iterator[Bench]:
    """Pin, start the upstream, prepare Gatehold; stop everything and clean up on exit."""
    pinning = Pinning.for_machine(not args.no_pin)
    if pinning.pin:
        os.sched_setaffinity(0, {int(pinning.load)})  # this script and wrk share one CPU
    scratch = Path(tempfile.mkdtemp(prefix="gatehold-bench-"))
    (scratch / "logs").mkdir()
    procs = Procs(scratch / "logs", pin=pinning.pin)
    try:
        port = free_port()
        upstream = procs.start(
            "upstream", [PY, str(BENCH / "upstream.py"), "--port", str(port)], cpus=pinning.servers
        )
        wait_http(f"http://127.0.0.1:{port}{ITEMS}1", upstream)
        setup = gatehold_env.prepare(
            scratch / "gatehold",
            upstream_url=f"http://127.0.0.1:{port}",
            port=free_port(),
            many_sessions=many_sessions,
        )
        print(pinning.describe(), flush=True)
        yield Bench(args, pinning, scratch, procs, write_script(scratch), upstream, port, setup)
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def check_tools(*, need_nginx: bool, need_caddy: bool = False) -> None:
    missing = [tool for tool in ("wrk",) if shutil.which(tool) is None]
    if need_caddy and shutil.which("caddy") is None:
        missing.append("caddy")
    if need_nginx:
        try:
            nginx.nginx_binary()
        except RuntimeError:
            missing.append("nginx")
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)} — run `make bench-deps` (or bench/setup.sh)"
        )


def store_note(path: Path) -> str:
    """The filesystem under Gatehold's SQLite file: on tmpfs, fsync would cost nothing."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    warn = "  (WARNING: tmpfs, fsync costs nothing here)" if kind == "tmpfs" else ""
    return f"audit store: SQLite, WAL, synchronous=FULL, on {kind}{warn}"


def interleaved(
    rows: Sequence[Row], rounds: int, phase: str, measure: Callable[[Row], WrkResult]
) -> None:
    """Measure every row once per round, in order, and append the result to ``phase``."""
    for number in range(1, rounds + 1):
        shown = []
        for row in rows:
            result = measure(row)
            getattr(row, phase).append(result)
            value = (
                f"{result.mib_per_s:,.0f} MiB/s" if phase == "stream" else f"{result.rps:,.0f}/s"
            )
            shown.append(f"{row.key} {value}")
        print(f"  {phase} round {number}/{rounds}: " + ", ".join(shown), flush=True)


def check(ok: bool, text: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {text}"


def info(_ok: bool, text: str) -> str:
    """A figure reported beside the targets, with no target of its own."""
    return f"info  {text}"


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"  # NaN (nothing measured) → dash


def emit(lines: Sequence[str], markdown: Path) -> None:
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    print(f"(written to {markdown.relative_to(BENCH.parent)})")


# ---------------------------------------------------------------------------- full run


@dataclass
class Extras:
    """What the full run measures besides the interleaved rows."""

    stages: list[tuple[str, float, int]]
    """Gatehold (1 process), mean ms per stage during the loaded rounds."""
    stages_unloaded: list[tuple[str, float, int]]
    """The same during the 1-connection rounds."""
    traces: dict[str, RssTrace]
    sessions: SessionsPhase | None
    audit_rate: float
    audit_batches: str
    commit_ms: float
    """One durable audit commit (one producer, so one record per commit), in ms."""


def full(args: argparse.Namespace) -> None:
    check_tools(need_nginx=True, need_caddy=args.forward_auth is not False)
    with opened_bench(args, many_sessions=args.sessions) as bench:
        print(store_note(bench.gatehold.config.parent), flush=True)
        rows, admin_url = start_rows(bench)
        extras = measure_all(bench, rows, admin_url)
    emit(full_report(args, bench, rows, extras), RESULTS / "latest.md")


def start_rows(bench: Bench) -> tuple[list[Row], str]:
    """Start every proxy; returns the rows in round order and Gatehold's admin URL."""
    auth_port = free_port()
    auth_argv = [PY, str(BENCH / "auth_service.py"), "--port", str(auth_port)]
    auth = bench.start("auth-service", [*auth_argv, "--tokens", str(bench.gatehold.tokens_file)])
    wait_http(
        f"http://127.0.0.1:{auth_port}/check", auth, headers=bench.cookie_header(), expect=204
    )
    nginx_rows = []
    for key, label, checker in (
        ("nginx", "nginx", None),
        ("nginx+auth", "nginx + auth_request", auth_port),
    ):
        port = free_port()
        config = nginx.write_config(
            bench.scratch / key, port=port, upstream_port=bench.upstream_port, auth_port=checker
        )
        proc = bench.start(key, nginx.nginx_argv(config))
        wait_http(f"http://127.0.0.1:{port}{ITEMS}1", proc, headers=bench.cookie_header())
        nginx_rows.append(Row(key, label, port, [proc, auth] if checker else [proc]))
    forward_auth = bench.start_forward_auth() if bench.args.forward_auth is not False else []
    floor, floor_port = bench.start_floor()
    gh1_port, gh2_port, admin_port = free_port(), free_port(), free_port()
    gh1 = bench.start_gatehold("gatehold-1", port=gh1_port, admin_port=admin_port)
    gh2 = bench.start_gatehold("gatehold-2w", port=gh2_port, workers=2)
    rows = [
        Row("direct", "direct (no proxy)", bench.upstream_port, [bench.upstream]),
        *nginx_rows,
        *forward_auth,
        Row("floor", "Python floor (aiohttp)", floor_port, [floor]),
        Row("gh1", "Gatehold, 1 process", gh1_port, [gh1]),
        Row("gh2", "Gatehold, --workers 2", gh2_port, [gh2]),
    ]
    return rows, f"http://127.0.0.1:{admin_port}"


def measure_all(bench: Bench, rows: list[Row], admin_url: str) -> Extras:
    args = bench.args
    by_key = {row.key: row for row in rows}
    print(f"warm-up: {args.warmup:.0f} s per row, 50 connections", flush=True)
    for row in rows:
        bench.wrk(row, connections=50, seconds=args.warmup)

    print(f"loaded: {args.rounds} rounds × {args.seconds:.0f} s, 50 connections", flush=True)
    before = scrape_stages(admin_url)
    interleaved(rows, args.rounds, "loaded", lambda r: bench.loaded(r, seconds=args.seconds))
    stages = stage_means(before, scrape_stages(admin_url))
    for row in rows:
        row.measure_rss()

    print(
        f"unloaded: {args.rounds} rounds × {args.unloaded_seconds:.0f} s, 1 connection", flush=True
    )
    before = scrape_stages(admin_url)
    interleaved(
        rows,
        args.rounds,
        "unloaded",
        lambda r: bench.wrk(r, connections=1, seconds=args.unloaded_seconds),
    )
    stages_unloaded = stage_means(before, scrape_stages(admin_url))

    print(
        f"stream: {args.rounds} rounds × {args.stream_seconds:.0f} s of /files/10m, 4 connections",
        flush=True,
    )
    interleaved(
        rows,
        args.rounds,
        "stream",
        lambda r: bench.wrk(
            r, connections=4, seconds=args.stream_seconds, path="/files/10m", ids=0
        ),
    )

    print("200 MiB once through the floor and Gatehold, RSS sampled", flush=True)
    traces = {
        key: big_download(
            f"{by_key[key].url}/files/200m", bench.cookie_header(), by_key[key].procs[0]
        )
        for key in ("floor", "gh1")
    }
    for key in ("gh2", "gh1"):  # free their CPU and memory for the last phases
        bench.procs.stop(by_key[key].procs[0])

    sessions = sessions_phase(bench) if args.sessions else None

    print("audit writer: bench/audit_writer.py --records 20000 --producers 200", flush=True)
    rate, batches = run_audit_writer(
        PY, BENCH / "audit_writer.py", pin_prefix(bench.pinning.servers, bench.pinning.pin)
    )
    print("one durable commit: bench/audit_writer.py --records 2000 --producers 1", flush=True)
    single, _ = run_audit_writer(
        PY,
        BENCH / "audit_writer.py",
        pin_prefix(bench.pinning.servers, bench.pinning.pin),
        records=2000,
        producers=1,
    )
    commit_ms = 1000 / single if single else float("nan")
    return Extras(stages, stages_unloaded, traces, sessions, rate, batches, commit_ms)


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> list[tuple[str, float, int]]:
    """(stage, mean ms, observations) between two scrapes of ``gatehold_stage_seconds``."""
    means = []
    for stage, (total, count) in after.items():
        seconds, observed = total - before[stage][0], int(count - before[stage][1])
        means.append((stage, seconds / observed * 1000 if observed else float("nan"), observed))
    return means


def sessions_phase(bench: Bench) -> SessionsPhase:
    """A fresh Gatehold: every session is used once (all active), then load over all of them."""
    args = bench.args
    many = bench.gatehold.many_tokens_file
    assert many is not None
    print(f"{args.sessions:,} sessions: a fresh Gatehold, each used once, then load", flush=True)
    port, admin_port = free_port(), free_port()
    admin_url = f"http://127.0.0.1:{admin_port}"
    proc = bench.start_gatehold("gatehold-sessions", port=port, admin_port=admin_port)
    row = Row("sessions", "Gatehold, many sessions", port, [proc])
    before: dict[str, tuple[float, float]] = {}
    touched: tuple[float, dict[int, int]] = (0.0, {})

    def load() -> WrkResult:
        nonlocal touched
        touched = touch_every_session(row.url, ITEMS, many, gatehold_env.COOKIE)
        before.update(scrape_stages(admin_url))
        return bench.wrk(row, connections=50, seconds=args.seconds + 2, tokens=many)

    result, peak = peak_rss_while(proc, load)
    stages = stage_means(before, scrape_stages(admin_url))
    after = proc.rss()
    bench.procs.stop(proc)
    return SessionsPhase(result, peak, after, stages, touched[0], touched[1])


@dataclass(frozen=True)
class SessionsPhase:
    """Gatehold with many sessions: the load over all of them and what it cost."""

    load: WrkResult
    peak_rss: int
    rss_after: int
    stages: list[tuple[str, float, int]]
    touch_seconds: float
    """Time to use every session once (each a cold load into the cache)."""
    touch_statuses: dict[int, int]


def targets(rows: Sequence[Row], extras: Extras, sessions: int) -> list[str]:
    """The restated targets: both deployment shapes against the floor, in this run."""
    by_key = {row.key: row for row in rows}
    direct, floor, gh = by_key["direct"], by_key["floor"], by_key["gh1"]
    floor_cpu = floor.median_cpu()
    floor_added = floor.added(direct, p50)
    allowed = floor_added + extras.commit_ms + 0.2
    lines = []
    for key in ("nginx+fa", "caddy+fa"):
        row = by_key.get(key)
        if row is None:
            continue
        # Targets are stated for nginx; Caddy's figures are reported beside them.
        mark = check if key == "nginx+fa" else info
        decide = median([c.decider for c in row.cpu])
        lines += [
            mark(
                row.ratio(floor, "loaded", rps) >= 0.85,
                f"{row.label}: {row.ratio(floor, 'loaded', rps):.2f}× floor req/s (≥ 0.85×)",
            ),
            mark(
                row.ratio(gh, "loaded", rps) >= 1.4,
                f"{row.label}: {row.ratio(gh, 'loaded', rps):.2f}× the full proxy's req/s (≥ 1.4×)",
            ),
            mark(
                decide <= 200,
                f"{row.label}: Gatehold CPU per decision {decide:.0f} µs (≤ 200 µs)",
            ),
            mark(
                row.added(direct, p50) <= allowed,
                f"{row.label}: added p50 at 1 connection {row.added(direct, p50):.3f} ms "
                f"(≤ floor's {floor_added:.3f} + one durable commit {extras.commit_ms:.3f} "
                f"+ 0.2 = {allowed:.3f} ms)",
            ),
        ]
    thr = gh.ratio(floor, "loaded", rps)
    trace = extras.traces["gh1"]
    stream = gh.ratio(floor, "stream", mibs)
    many_rss = extras.sessions.peak_rss if extras.sessions else 0
    lines += [
        check(thr >= 0.65, f"full proxy, 1 process: {thr:.2f}× floor req/s (≥ 0.65×)"),
        check(
            gh.median_cpu() <= floor_cpu + 150,
            f"full proxy, 1 process: CPU {gh.median_cpu():.0f} µs/req = floor's "
            f"{floor_cpu:.0f} + {gh.median_cpu() - floor_cpu:.0f} (≤ floor's + 150 µs)",
        ),
        check(
            gh.added(direct, p50) <= allowed,
            f"full proxy, 1 process: added p50 at 1 connection {gh.added(direct, p50):.3f} ms "
            f"(≤ floor's {floor_added:.3f} + one durable commit {extras.commit_ms:.3f} "
            f"+ 0.2 = {allowed:.3f} ms)",
        ),
        check(
            0 < many_rss <= 100 * MIB,
            f"RSS of one process with {sessions:,} active sessions: {many_rss / MIB:.1f} MiB "
            f"(≤ 100 MiB)",
        ),
        check(
            stream >= 0.9 and trace.flat,
            f"streaming: {stream:.2f}× floor MiB/s (≥ 0.9×); RSS "
            f"{'flat' if trace.flat else 'NOT flat'} over 200 MiB "
            f"(peak +{trace.growth / MIB:.1f} MiB)",
        ),
        check(
            extras.audit_rate >= 5000,
            f"audit writer: {extras.audit_rate:,.0f} durable records/s (≥ 5,000)",
        ),
        info(True, f"p99 at 50 connections: {gh.ratio(floor, 'loaded', p99):.2f}× floor's"),
    ]
    return lines


def full_report(
    args: argparse.Namespace, bench: Bench, rows: list[Row], extras: Extras
) -> list[str]:
    by_key = {row.key: row for row in rows}
    direct, floor, auth, gh = by_key["direct"], by_key["floor"], by_key["nginx+auth"], by_key["gh1"]
    lines = [
        "## Gatehold side by side",
        "",
        "| Row | req/s | × floor | × nginx+auth | p50 ms | p99 ms | errors "
        "| 1-conn p50 ms | 1-conn p99 ms | added p50 ms | added p99 ms | 10 MiB MiB/s "
        "| stream × floor "
        "| RSS MiB | CPU µs/req |",
        "|" + "---|" * 15,
    ]
    for row in rows:
        errors = sum(r.errors for r in row.loaded)
        total = sum(r.requests for r in row.loaded)
        lines.append(
            f"| {row.label} | {fmt(row.median('loaded', rps), 0)} "
            f"| {fmt(row.ratio(floor, 'loaded', rps))} "
            f"| {fmt(row.ratio(auth, 'loaded', rps))} "
            f"| {fmt(row.median('loaded', p50))} | {fmt(row.median('loaded', p99))} "
            f"| {errors}/{total} "
            f"| {fmt(row.median('unloaded', p50), 3)} | {fmt(row.median('unloaded', p99), 3)} "
            f"| {fmt(row.added(direct, p50), 3)} | {fmt(row.added(direct, p99), 3)} "
            f"| {fmt(row.median('stream', mibs), 0)} | {fmt(row.ratio(floor, 'stream', mibs))} "
            f"| {fmt(row.rss / MIB, 1)} | {fmt(row.median_cpu(), 0)} |"
        )
    lines += [
        "",
        f"- {args.rounds} interleaved rounds; medians; ratios are medians of same-round ratios.",
        cpu_note(floor, gh),
        rss_note(rows),
        f"- {bench.pinning.describe()}",
        f"- {store_note(bench.gatehold.config.parent)}",
    ]
    for key, name in (("floor", "the floor"), ("gh1", "Gatehold")):
        trace = extras.traces[key]
        lines.append(
            f"- 200 MiB once through {name}: {trace.mib_per_s:,.0f} MiB/s; RSS before "
            f"{trace.before / MIB:.1f}, peak {trace.peak / MIB:.1f}, after {trace.after / MIB:.1f} "
            f"MiB ({'flat' if trace.flat else 'NOT flat'})"
        )
    if extras.sessions is not None:
        phase = extras.sessions
        identity = {stage: mean for stage, mean, _count in phase.stages}["identity"]
        statuses = ", ".join(f"{n:,}× {code}" for code, n in sorted(phase.touch_statuses.items()))
        lines.append(
            f"- Gatehold with {args.sessions:,} sessions: each used once in "
            f"{phase.touch_seconds:.1f} s ({statuses}), then 50 connections cycling through "
            f"all of them: {phase.load.rps:,.0f} req/s, p99 {phase.load.p99_ms:.1f} ms, "
            f"errors {phase.load.errors}, identity stage {fmt(identity, 3)} ms mean; "
            f"RSS peak {phase.peak_rss / MIB:.1f} MiB, after {phase.rss_after / MIB:.1f} MiB"
        )
    lines.append(
        f"- audit writer: {extras.audit_rate:,.0f} durable records/s ({extras.audit_batches}); "
        f"one durable commit (one producer): {extras.commit_ms:.3f} ms"
    )
    for row in rows:
        if row.decider is not None and row.cpu:
            decide = median([c.decider for c in row.cpu])
            lines.append(
                f"- {row.label}: CPU µs/req {row.median_cpu():.0f} = Gatehold deciding "
                f"{decide:.0f} + the front proxy {row.median_cpu() - decide:.0f}"
            )
    for when, stages in (("50", extras.stages), ("1", extras.stages_unloaded)):
        lines.append(
            f"- Gatehold, 1 process, mean ms per stage at {when} connection(s): "
            + ", ".join(f"{stage} {fmt(mean, 3)}" for stage, mean, _count in stages)
        )

    lines += ["", "### Targets", "", "```", *targets(rows, extras, args.sessions), "```"]
    return lines


# ---------------------------------------------------------------------------- quick, profile


def quick(args: argparse.Namespace) -> None:
    """Floor vs Gatehold (1 process) only: 3 interleaved rounds of 5 s.

    With ``--forward-auth`` the nginx and Caddy + Gatehold forward-auth rows too."""
    check_tools(need_nginx=bool(args.forward_auth), need_caddy=bool(args.forward_auth))
    rounds, seconds = (max(3, args.rounds) if args.shadow else 3), 5.0
    with opened_bench(args, many_sessions=0) as bench:
        floor, floor_port = bench.start_floor()
        gh_port, admin_port = free_port(), free_port()
        gh1 = bench.start_gatehold(
            "gatehold-1", port=gh_port, admin_port=admin_port if args.shadow else None
        )
        rows = [
            Row("floor", "Python floor (aiohttp)", floor_port, [floor]),
            Row("gh1", "Gatehold, 1 process", gh_port, [gh1]),
        ]
        if args.ab_env:  # the same Gatehold with one environment variable changed
            name, _, value = args.ab_env.partition("=")
            port = free_port()
            other = bench.start_gatehold("gatehold-b", port=port, extra_env={name: value})
            rows.append(Row("gh1-b", f"Gatehold, 1 process, {args.ab_env}", port, [other]))
        if args.forward_auth:
            rows += bench.start_forward_auth()
        shadow = shadow_ab.ShadowToggle(bench.gatehold) if args.shadow else None
        admin_url = f"http://127.0.0.1:{admin_port}"
        shadow_spent: dict[str, list[float]] = {}
        if shadow is not None:
            rows += [
                Row(shadow_ab.KEY, "Gatehold, 1 process, shadow: another route", gh_port, [gh1]),
                Row(shadow_ab.FULL_KEY, "Gatehold, 1 process, shadow: a role", gh_port, [gh1]),
                Row(
                    shadow_ab.RESOURCE_KEY,
                    "Gatehold, 1 process, shadow: a resource",
                    gh_port,
                    [gh1],
                ),
            ]
        for row in rows:
            bench.wrk(row, connections=50, seconds=2)

        def measured(row: Row) -> WrkResult:
            if shadow is None:
                return bench.loaded(row, seconds=seconds)
            shadow.set(row.key)
            before = shadow_ab.shadow_cost(admin_url)
            result = bench.loaded(row, seconds=seconds)
            after = shadow_ab.shadow_cost(admin_url)
            spent = shadow_spent.setdefault(row.key, [0.0, 0.0])
            spent[0] += after[0] - before[0]
            spent[1] += after[1] - before[1]
            return result

        interleaved(rows, rounds, "loaded", measured)
        for row in rows:
            row.measure_rss()
    floor_row, gh = rows[:2]
    lines = [
        "## Quick: Python floor vs Gatehold (1 process)",
        "",
        "| Row | req/s | × floor | p50 ms | p99 ms | errors | RSS MiB | CPU µs/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {fmt(row.median('loaded', rps), 0)} "
            f"| {fmt(row.ratio(floor_row, 'loaded', rps))} "
            f"| {fmt(row.median('loaded', p50))} | {fmt(row.median('loaded', p99))} "
            f"| {sum(r.errors for r in row.loaded)} | {fmt(row.rss / MIB, 1)} "
            f"| {fmt(row.median_cpu(), 0)} |"
        )
    thr, tail = gh.ratio(floor_row, "loaded", rps), gh.ratio(floor_row, "loaded", p99)
    lines += [
        "",
        f"- {rounds} interleaved rounds × {seconds:.0f} s, 50 connections",
        cpu_note(floor_row, gh),
        f"- {bench.pinning.describe()}",
        "",
        "```",
        f"Gatehold / floor req/s: {thr:.2f}×",
        check(thr >= 0.65, f"full proxy, 1 process: {thr:.2f}× floor req/s (≥ 0.65×)"),
        check(
            gh.median_cpu() <= floor_row.median_cpu() + 150,
            f"full proxy, 1 process: CPU {gh.median_cpu():.0f} µs/req = floor's "
            f"{floor_row.median_cpu():.0f} + {gh.median_cpu() - floor_row.median_cpu():.0f} "
            f"(≤ floor's + 150 µs)",
        ),
        info(True, f"p99 at 50 connections: {tail:.2f}× floor's"),
    ]
    for row in rows[2:]:
        if row.key in shadow_spent:
            cpu = median([s.proxy / g.proxy for s, g in zip(row.cpu, gh.cpu, strict=True)])
            spent, judged = shadow_spent[row.key]
            each = spent / max(judged, 1) * 1e6
            lines.append(
                check(
                    cpu <= 1.10,
                    f"{row.label}: CPU {row.median_cpu():.0f} vs {gh.median_cpu():.0f} µs/req, "
                    f"{cpu:.3f}× (≤ 1.10×); req/s {row.ratio(gh, 'loaded', rps):.2f}×; "
                    f"time in shadow {each:.1f} µs/req over {judged:,.0f} timed requests = "
                    f"{each / gh.median_cpu():.1%} of Gatehold's CPU µs/req",
                )
            )
            continue
        if row.decider is None:
            lines.append(
                f"{row.label} / Gatehold req/s: {row.ratio(gh, 'loaded', rps):.2f}×; CPU "
                f"{row.median_cpu():.0f} vs {gh.median_cpu():.0f} µs/req"
            )
            continue
        decide = median([c.decider for c in row.cpu])
        lines += [
            f"{row.label} / floor req/s: {row.ratio(floor_row, 'loaded', rps):.2f}×, "
            f"/ full proxy: {row.ratio(gh, 'loaded', rps):.2f}×; Gatehold CPU per decision "
            f"{decide:.0f} µs, the front proxy {row.median_cpu() - decide:.0f} µs"
        ]
    lines += ["```"]
    emit(lines, RESULTS / "quick.md")


def profile(args: argparse.Namespace) -> None:
    """py-spy on a 1-process Gatehold under wrk load; writes and prints the top frames.

    With ``--forward-auth``: the Gatehold that decides for nginx, under load through it."""
    check_tools(need_nginx=bool(args.forward_auth), need_caddy=bool(args.forward_auth))
    spy = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy (or make bench-deps)")
    raw = RESULTS / "profile-raw.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    seconds = args.profile_seconds
    with opened_bench(args, many_sessions=0) as bench:
        if args.forward_auth:  # the deciding Gatehold, behind nginx
            row = bench.start_forward_auth()[0]
            assert row.decider is not None
            gh1 = row.decider
        else:
            port = free_port()
            gh1 = bench.start_gatehold("gatehold-1", port=port)
            row = Row("gh1", "Gatehold, 1 process", port, [gh1])
        bench.wrk(row, connections=50, seconds=3)
        load = subprocess.Popen(
            [*pin_prefix(bench.pinning.load, bench.pinning.pin), "wrk", "-t1", "-c50"]
            + [f"-d{seconds + 4}s", "-s", str(bench.script), row.url, "--", ITEMS, str(IDS)]
            + [str(bench.gatehold.tokens_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(2)
            print(f"py-spy: {seconds} s of samples from Gatehold (pid {gh1.pid}) under load")
            subprocess.run(
                [spy, "record", "--nonblocking", "-r", "250", "-d", str(seconds)]
                + ["-p", str(gh1.pid), "--format", "raw", "-o", str(raw)],
                check=True,
                capture_output=True,
            )
        finally:
            out, _ = load.communicate(timeout=seconds + 30)
        print("\n".join(line for line in out.splitlines() if "Requests/sec" in line))
    report = profile_report.summarise(raw.read_text(errors="replace"))
    (RESULTS / "profile.txt").write_text(report)
    print(report)
    print(
        f"(collapsed stacks: {raw.relative_to(BENCH.parent)}; summary: bench/results/profile.txt)"
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="floor vs Gatehold only, < 2 min")
    mode.add_argument("--profile", action="store_true", help="py-spy on Gatehold under load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6, help="per loaded run")
    parser.add_argument("--unloaded-seconds", type=float, default=3)
    parser.add_argument("--stream-seconds", type=float, default=4)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--sessions", type=int, default=10_000, help="0 skips that phase")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--ab-env",
        default="",
        metavar="NAME=VALUE",
        help="--quick: one more Gatehold row with this environment variable (an A/B)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--forward-auth",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the nginx and Caddy + Gatehold forward-auth rows (default: in the full run, "
        "not in --quick)",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="--quick: the Gatehold row again with rules versions in shadow (CPU per "
        "request); --rounds applies",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup blocks run
    if args.quick:
        quick(args)
    elif args.profile:
        profile(args)
    else:
        full(args)


if __name__ == "__main__":
    main()
