"""How a serving process asks the C allocator for memory.

glibc's malloc gives threads that allocate at the same time arenas of their own, up to
eight per CPU, and an arena keeps the pages it once used. A gateway process has its
event loop, the audit writer and the SQLite driver threads: each grows an arena, and
the process holds several megabytes that only one of them uses now and then. Two
arenas are enough for that many threads: the event loop's objects come from Python's
own allocator, which does not lock per call. ``bench/rss_sessions.py`` measures it.
An operator's own ``MALLOC_ARENA_MAX`` is left as it is.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

ARENAS = 2
_M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the arena cap (malloc.h)."""


def limit_malloc_arenas(env: Mapping[str, str] = os.environ, arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``; ``False`` where that is not possible
    (another C library) or the environment already chose (``MALLOC_ARENA_MAX``)."""
    if "MALLOC_ARENA_MAX" in env:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
