"""Where a gateway's memory goes while people sign in: tracemalloc snapshots compared.

Starts the soak's servers (``bench/soak.py``) with one ``gatehold serve`` process run
through ``bench/traced_serve.py``, drives only magic-link sign-ins (each followed by a
request with the new session) for the given time and measures the process at evenly
spaced points: RSS, glibc's heap (in use and free), SQLite's own allocations, object
counts by type. With tracing (the default) ``tracemalloc`` starts at the first point,
and it prints the allocation sites of what was allocated after it and is still
alive at the end (file:line, with the call path of the largest), and those that grew
in the second half. Untraced (``--frames 0``) the figures are the plain process's.

    python bench/login_memory.py --minutes 3 --people 256
    python bench/login_memory.py --frames 0 --minutes 8 --points 9   # the shape over time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

import soak  # noqa: E402
from procs import MIB, Procs  # noqa: E402

IGNORE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def snapshot(pid: int, folder: Path, n: int, frames: int) -> tracemalloc.Snapshot | None:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not (folder / f"done-{n}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("no snapshot from the gateway")
        time.sleep(0.2)
    if not frames:
        return None
    return tracemalloc.Snapshot.load(str(folder / f"snap-{n}.pickle")).filter_traces(IGNORE)


async def run(target: soak.Target, users: int, seconds: float) -> soak.Tally:
    return await soak.drive(target, users, seconds, {"login": 1})


def show(title: str, stats: list[tracemalloc.StatisticDiff], top: int) -> None:
    total = sum(s.size_diff for s in stats)
    print(f"\n{title}: {total / 1024:+.0f} KiB in all; by allocation site:")
    for stat in stats[:top]:
        where = stat.traceback[0]
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} blocks  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="after the warm-up")
    parser.add_argument("--warmup", type=float, default=0.5, help="minutes before the first point")
    parser.add_argument("--points", type=int, default=3, help="measurements, evenly spaced")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--people", type=int, default=soak.PEOPLE, help="distinct people")
    parser.add_argument("--frames", type=int, default=8, help="traceback depth; 0: no tracing")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--trim", action="store_true", help="call malloc_trim(0) at each point, show RSS after"
    )
    parser.add_argument(
        "--distinct-clients",
        action="store_true",
        help="each person signs in from an address of their own (X-Forwarded-For)",
    )
    args = parser.parse_args()
    soak.PEOPLE = args.people
    soak.DISTINCT_CLIENTS = args.distinct_clients
    step = args.minutes * 60 / max(args.points - 1, 1)
    with tempfile.TemporaryDirectory() as scratch, Procs(Path(scratch), pin=False) as procs:
        traces = Path(scratch) / "traces"
        os.environ["GATEHOLD_TRACE_DIR"] = str(traces)
        os.environ["GATEHOLD_TRACE_FRAMES"] = str(args.frames)
        os.environ["GATEHOLD_TRACE_TRIM"] = "1" if args.trim else "0"
        command = [sys.executable, str(BENCH / "traced_serve.py")]
        target, gateway = soak.start_servers(procs, Path(scratch) / "gatehold", command, 1)
        pid = gateway.pid
        began = time.monotonic()
        signed_in = [len(asyncio.run(run(target, args.users, args.warmup * 60)).done)]
        snaps = [snapshot(pid, traces, 0, args.frames)]
        errors = 0
        for n in range(1, args.points):
            tally = asyncio.run(run(target, args.users, step))
            signed_in.append(signed_in[-1] + len(tally.done))
            errors += sum(tally.errors.values())
            snaps.append(snapshot(pid, traces, n, args.frames))
        seconds = time.monotonic() - began
        types = [json.loads((traces / f"types-{n}.json").read_text()) for n in range(args.points)]
        stats = [json.loads((traces / f"memory-{n}.json").read_text()) for n in range(args.points)]
    print(
        f"{signed_in[-1]} sign-ins in {seconds / 60:.1f} min ({errors} errors after the "
        f"warm-up), {args.users} at once, {args.people} distinct people; tracing: "
        f"{args.frames or 'off'}; client addresses: "
        f"{'one per person' if args.distinct_clients else 'all 127.0.0.1'}"
    )
    print("at each point (sign-ins so far, then MiB; threads as a count):")
    print("  sign-ins: " + ", ".join(str(n) for n in signed_in))
    for name in stats[0]:
        scale = 1 if name == "threads" else MIB
        print(f"  {name}: " + ", ".join(f"{s.get(name, 0) / scale:.2f}" for s in stats))
    added = max(signed_in[-1] - signed_in[0], 1)
    rss = stats[-1]["smaps_Rss"] - stats[0]["smaps_Rss"]
    print(
        f"RSS from the first point to the last: {rss / MIB:+.2f} MiB, "
        f"{rss / added:+.0f} B per sign-in"
    )
    print("\nobject types whose count grew (at each point):")
    deltas = {k: types[-1].get(k, 0) - types[0].get(k, 0) for k in types[-1]}
    for name, delta in sorted(deltas.items(), key=lambda kv: -kv[1])[:12]:
        if delta > 0:
            print(f"  {delta:+8d} {name}: " + ", ".join(str(t.get(name, 0)) for t in types))
    first, middle, last = snaps[0], snaps[len(snaps) // 2], snaps[-1]
    if first is None or middle is None or last is None:
        return
    alive = last.compare_to(first, "lineno")
    show("allocated after the warm-up and alive at the end", alive, args.top)
    print(f"  = {sum(s.size for s in alive) / added:.0f} B per sign-in")
    show("grown in the second half", last.compare_to(middle, "lineno"), args.top)
    print("\ncall paths of the largest survivors:")
    for stat in last.compare_to(first, "traceback")[:6]:
        print(f"  {stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks")
        for line in stat.traceback.format(limit=8, most_recent_first=True):
            print("    " + line)


if __name__ == "__main__":
    main()
