"""Small helpers for starting real servers in tests."""

from __future__ import annotations

import os
import random
import re
import socket
from pathlib import Path

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
SPAN = 12_000
"""How many ports below the ephemeral range the tests choose from."""


def free_port() -> int:
    """A loopback port nothing listens on, for a server a test starts on it later.

    Not one the kernel hands out itself (``bind(0)``): between choosing it and the
    server's bind, the kernel may give the same port to one of the many client
    connections the suite opens, and the server fails with "address already in use".
    Ports below the ephemeral range are never given to clients; each pytest-xdist worker
    takes its own share of them, so two workers never choose the same one.
    """
    low, high = _test_ports()
    for _ in range(500):
        port = random.randint(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free loopback port in {low}-{high}")


def _test_ports() -> tuple[int, int]:
    try:
        ephemeral_low = int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low = max(1024, ephemeral_low - SPAN)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = int(worker.group(1)) if worker else 0
    share = (ephemeral_low - low) // max(workers, 1)
    start = low + share * (index % max(workers, 1))
    return start, start + share - 1
