"""Ports the tests choose for their servers: never ones the kernel gives to clients."""

from __future__ import annotations

import socket

import pytest

from tests.support import servers_base
from tests.support.servers_base import EPHEMERAL, free_port


def test_a_chosen_port_is_free_and_below_the_ephemeral_range() -> None:
    ephemeral_low = int(EPHEMERAL.read_text().split()[0])
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < ephemeral_low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))  # nothing holds it


def test_each_worker_has_its_own_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(servers_base._test_ports())
    (low0, high0), (low1, high1) = shares
    assert high0 < low1 and high0 - low0 > 1000 and high1 - low1 > 1000
