"""A real third-party app behind the gateway: httpbin from PyPI, served by waitress."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers_base import free_port
from tests.support.stack import running_stack

SPOOFED = {
    "X-Gatehold-User": "1",
    "X-Gatehold-Email": "admin@example.test",
    "X-Forwarded-User": "admin",
    "X-Remote-User": "admin",
    "X-Auth-Request-Email": "admin@example.test",
    "X-Original-URL": "/admin",
    "Forwarded": "for=6.6.6.6",
    "X-Http-Method-Override": "DELETE",
}


@pytest.fixture
def httpbin(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "httpbin.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "httpbin:app"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        import socket

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"httpbin did not start: {(tmp_path / 'httpbin.log').read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


RULES = """
version: 1
upstreams:
  httpbin: {url: "${HTTPBIN_URL}"}
roles:
  standard: {can: [read]}
routes:
  - name: httpbin-headers
    match: {path: "/headers", methods: [GET]}
    upstream: httpbin
"""


async def test_httpbin_sees_the_gateways_identity_and_none_of_the_spoofed_headers(
    tmp_path: Path, httpbin: str
) -> None:
    async with running_stack(
        tmp_path, rules_text=RULES, rules_env={"HTTPBIN_URL": httpbin}
    ) as stack:
        response = await stack.client.get(
            "/headers?show_env=1", headers=SPOOFED | stack.cookie("alice@acme.test")
        )
        assert response.status == 200
        seen = {k.lower(): v for k, v in (await response.json())["headers"].items()}
    assert seen["x-gatehold-email"] == "alice@acme.test"
    assert seen["x-gatehold-tenant"] == "acme"
    assert seen["x-gatehold-roles"] == "standard"
    assert seen["x-gatehold-assertion"].count(".") == 2
    assert len(seen["x-request-id"]) == 32
    for name in SPOOFED:
        lowered = name.lower()
        if lowered.startswith("x-gatehold-"):
            assert seen[lowered] != SPOOFED[name]
        else:
            assert lowered not in seen, f"{name} reached httpbin"
