"""``gatehold`` under ``tracemalloc``, driven by SIGUSR1 (bench only).

Used by ``bench/login_memory.py`` to see where a serving process's memory goes. The
first SIGUSR1 starts tracing (after the warm-up, so only what is allocated from then
on is traced, and starting up stays fast); each signal writes a snapshot
(``snap-N.pickle`` unless ``GATEHOLD_TRACE_FRAMES`` is 0, loadable with
``tracemalloc.Snapshot.load``; empty for the first),
a count of the collector's objects by type (``types-N.json``) and the memory outside
Python's allocator (``memory-N.json``: SQLite's own allocations, glibc's heap, the
threads) to ``$GATEHOLD_TRACE_DIR``. Nothing of this is in the gateway itself: it wraps the
command line from outside.

    GATEHOLD_TRACE_DIR=out python bench/traced_serve.py serve --config gatehold.yaml
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import itertools
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def memory() -> dict[str, int]:
    """Bytes held outside tracemalloc's view: SQLite's allocator, glibc's heap, threads."""
    found: dict[str, int] = {}
    sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
    found["sqlite_memory_used"] = sqlite.sqlite3_memory_used()
    found["sqlite_memory_highwater"] = sqlite.sqlite3_memory_highwater(0)
    libc = ctypes.CDLL(None)
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
        shown = ("arena", "hblkhd", "uordblks", "fordblks")  # heap, mmapped, in use, free
        found |= {f"malloc_{name}": getattr(info, name) for name in shown}
    found["tracemalloc_traced"] = tracemalloc.get_traced_memory()[0]
    found["tracemalloc_own"] = tracemalloc.get_tracemalloc_memory()
    found["threads"] = len(os.listdir("/proc/self/task"))
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        if name in ("Rss", "Anonymous", "Pss_File"):
            found[f"smaps_{name}"] = int(value.split()[0]) * 1024
    return found


def main() -> None:
    out = Path(os.environ["GATEHOLD_TRACE_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    frames = int(os.environ.get("GATEHOLD_TRACE_FRAMES", "8"))
    numbers = itertools.count()

    def dump(_signal: int, _frame: FrameType | None) -> None:
        n = next(numbers)
        gc.collect()
        if frames and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out / f"snap-{n}.pickle"))
        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        (out / f"types-{n}.json").write_text(json.dumps(dict(counts.most_common())))
        found = memory()
        if os.environ.get("GATEHOLD_TRACE_TRIM") == "1":  # how much of it glibc gives back
            ctypes.CDLL(None).malloc_trim(0)
            found |= {f"trimmed_{k}": v for k, v in memory().items() if k.startswith("smaps")}
        (out / f"memory-{n}.json").write_text(json.dumps(found))
        (out / f"done-{n}").touch()

    signal.signal(signal.SIGUSR1, dump)
    from gateway.cli import main as gatehold

    sys.argv = ["gatehold", *sys.argv[1:]]
    gatehold()


if __name__ == "__main__":
    main()
