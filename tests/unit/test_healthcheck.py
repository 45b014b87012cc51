"""``gatehold health`` finds the listener its settings name and says why in one line."""

from __future__ import annotations

import json

import pytest

from gateway.config.settings import ServerSettings
from gateway.healthcheck import Verdict, _status_of, health_url


@pytest.mark.parametrize(
    ("host", "asked"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("127.0.0.5", "127.0.0.5"),
        ("fd00::7", "[fd00::7]"),
        ("gatehold.internal", "gatehold.internal"),
    ],
)
def test_a_listener_on_every_address_is_asked_on_loopback(host: str, asked: str) -> None:
    server = ServerSettings(host=host, port=8181, admin_port=9191)
    assert health_url(server, ready=False) == f"http://{asked}:8181/.gatehold/health"
    assert health_url(server, ready=True) == f"http://{asked}:9191/ready"


def test_readiness_without_an_admin_listener_is_unhealthy_and_says_what_to_set() -> None:
    verdict = health_url(ServerSettings(port=8181), ready=True)
    assert isinstance(verdict, Verdict)
    assert not verdict.healthy
    assert verdict.line.startswith("server.admin_port is not set")


@pytest.mark.parametrize(
    ("page", "shown"),
    [
        ({"status": "ready"}, " ready"),
        ({"status": "not-ready", "reasons": ["store: not answering", "audit: x"]},
         ": store: not answering; audit: x"),
        (["not", "a", "page"], ""),
    ],
)  # fmt: skip
def test_the_line_names_the_status_or_every_reason(page: object, shown: str) -> None:
    assert _status_of(json.dumps(page).encode()) == shown
    assert _status_of(b"<html>not json</html>") == ""
