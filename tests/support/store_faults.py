"""Faults of the embedded store made by real means, for the audit-store fault tests.

``sqlite_locked`` holds a SQLite file's write lock from another process (``BEGIN
EXCLUSIVE`` on a ``sqlite3`` connection of a child Python), as a backup tool, a
``sqlite3`` shell left open in a transaction or a stuck second writer would.
"""

from __future__ import annotations

import asyncio
import errno
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

_LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
db.execute("ROLLBACK")
"""


@asynccontextmanager
async def sqlite_locked(database: Path) -> AsyncIterator[subprocess.Popen[str]]:
    """Another process holds ``database``'s write lock until the block ends.

    The waits for the locker run in a thread, never on the event loop: a gateway served
    in the test's own loop may be between a write and its commit when the locker asks
    for the lock, and it can only commit (and let the locker in) while the loop runs.
    """
    with subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdout is not None and locker.stdin is not None
        try:
            assert (await asyncio.to_thread(locker.stdout.readline)).strip() == "locked"
            yield locker
        finally:
            locker.stdin.close()
            assert await asyncio.to_thread(locker.wait, 30) == 0


def on_small_tmpfs(command: Sequence[str], *, folder: Path, seed: Path, size_kib: int) -> list[str]:
    """``command`` in a private mount namespace where ``folder`` is a tmpfs of
    ``size_kib`` KiB holding a copy of ``seed`` (the data folder prepared outside).

    Only ``command`` sees the small file system; from outside it is reached through
    ``/proc/<pid>/root`` + ``folder`` (see ``inside``), which is how a test fills it and
    frees it again. The mount vanishes with the process.
    """
    script = [
        f"mount -t tmpfs -o size={size_kib}k,mode=0700 gatehold-full {shlex.quote(str(folder))}",
        f"cp -a {shlex.quote(str(seed))}/. {shlex.quote(str(folder))}/",
        f"exec {shlex.join(command)}",
    ]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", "\n".join(script)]


def inside(pid: int, path: Path) -> Path:
    """``path`` as the process ``pid`` sees it (in its mount namespace)."""
    return Path(f"/proc/{pid}/root") / path.relative_to("/")


def fill(folder: Path, name: str = "filler") -> int:
    """Write a file into ``folder`` until its file system is full; the bytes written."""
    chunk = b"\0" * 65536
    written = 0
    with (folder / name).open("wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(chunk) or 0
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
        # The last partial pages too: byte by byte is too slow, so halve the chunk.
        size = len(chunk) // 2
        while size:
            try:
                written += filler.write(chunk[:size]) or 0
            except OSError:
                size //= 2
    return written
