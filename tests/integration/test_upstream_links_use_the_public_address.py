"""Apps behind the gateway build their links from its public address, and only from it.

A real app from PyPI: a Flask app served by waitress, once behind Werkzeug's
``ProxyFix(x_for=0, x_proto=1, x_host=1, x_prefix=1)`` (it reads ``X-Forwarded-Host``,
``-Proto`` and ``-Prefix``) and once reading nothing but the request (``preserve_host``
is for that one). Through the gateway, ``url_for(..., _external=True)`` and
``request.host_url`` name ``server.public_url``; a client's ``Host``,
``X-Forwarded-Host: evil.test`` (in any spelling), ``X-Forwarded-Prefix`` or
``Forwarded`` never reach the app. ``server.public_url`` has no path (the gateway is
served at the root), so no ``X-Forwarded-Prefix`` is sent.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.served import wait_for_port
from tests.support.servers_base import free_port
from tests.support.stack import REPO, Stack, running_stack

RULES = """
version: 1
upstreams:
  proxied: {url: "${PROXIED_URL}"}
  proxied-host: {url: "${PROXIED_URL}", preserve_host: true}
  plain: {url: "${PLAIN_URL}"}
  plain-host: {url: "${PLAIN_URL}", preserve_host: true}
roles:
  standard: {can: [read]}
  readonly: {can: [read]}
  admin: {can: [read]}
  operator: {can: [read], scope: global}
routes:
  - {name: away, match: {path: "/{area}/away", methods: [GET]}, upstream: plain-host}
  - {name: proxied, match: {path: "/proxied/links", methods: [GET]}, upstream: proxied}
  - name: proxied-host
    match: {path: "/proxied-host/links", methods: [GET]}
    upstream: proxied-host
  - {name: plain, match: {path: "/plain/links", methods: [GET]}, upstream: plain}
  - {name: plain-host, match: {path: "/plain-host/links", methods: [GET]}, upstream: plain-host}
"""

SPOOFED = [
    ("Host", "evil.test"),
    ("X-Forwarded-Host", "evil.test"),
    ("X-Forwarded-Host", "evil.test:443"),
    ("x-forwarded-host", "evil.test"),
    ("X_Forwarded_Host", "evil.test"),
    ("X.Forwarded.Host", "evil.test"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X_Forwarded_Prefix", "/evil"),
    ("X-Forwarded-Port", "4443"),
    ("X-Forwarded-Server", "evil.test"),
    ("Forwarded", "host=evil.test;proto=https"),
    ("X-Host", "evil.test"),
    ("X-Original-Host", "evil.test"),
    ("X-HTTP-Host-Override", "evil.test"),
]


def _serve(app: str, log: Path) -> Iterator[str]:
    """``app`` (module:callable) served by waitress on a free port; yields its URL."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                "--listen",
                f"127.0.0.1:{port}",
                # waitress drops X-Forwarded-* itself unless told which peer may send
                # them; let them through so the app sees all the gateway sends.
                "--no-clear-untrusted-proxy-headers",
                app,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            wait_for_port(port, process, log)  # fails, with the log, if it never listens
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[str, str]]:
    proxied = _serve("tests.support.links_app:proxied", tmp_path / "proxied.log")
    plain = _serve("tests.support.links_app:plain", tmp_path / "plain.log")
    urls = {"PROXIED_URL": next(proxied), "PLAIN_URL": next(plain)}
    yield urls
    for server in (proxied, plain):
        server.close()


@asynccontextmanager
async def gateway(
    tmp_path: Path, apps: dict[str, str], public_url: str = "http://gatehold.test"
) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path, rules_text=RULES, rules_env=apps, server={"public_url": public_url}
    ) as stack:
        yield stack


async def links(stack: Stack, area: str) -> dict[str, Any]:
    headers = [*SPOOFED, *stack.cookie("alice@acme.test").items()]
    response = await stack.client.get(f"/{area}/links", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def assert_nothing_spoofed_arrived(seen: dict[str, str]) -> None:
    assert not [k for k, v in seen.items() if "evil" in v or v in ("https", "4443")], seen
    assert "HTTP_X_FORWARDED_PREFIX" not in seen, "no prefix: the gateway is served at /"
    for name in ("HTTP_FORWARDED", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_SERVER"):
        assert name not in seen, name
    for name in ("HTTP_X_HOST", "HTTP_X_ORIGINAL_HOST", "HTTP_X_HTTP_HOST_OVERRIDE"):
        assert name not in seen, name


async def test_an_app_behind_proxyfix_links_to_the_gateways_public_address(
    tmp_path: Path, apps: dict[str, str]
) -> None:
    async with gateway(tmp_path, apps) as stack:
        found = await links(stack, "proxied")
    assert found["external"] == "http://gatehold.test/proxied/links"
    assert found["host_url"] == "http://gatehold.test/"
    seen = found["seen"]
    assert seen["HTTP_X_FORWARDED_HOST"] == "gatehold.test"
    assert seen["HTTP_X_FORWARDED_PROTO"] == "http"
    assert seen["HTTP_HOST"] == apps["PROXIED_URL"].removeprefix("http://"), "the app's own"
    assert_nothing_spoofed_arrived(seen)


async def test_the_scheme_is_the_public_urls_not_the_one_the_client_used(
    tmp_path: Path, apps: dict[str, str]
) -> None:
    """Behind a TLS terminator the gateway may be spoken to in plain HTTP; the links
    must still be the ``https`` ones people use."""
    async with gateway(tmp_path, apps, public_url="https://gatehold.test:8443") as stack:
        found = await links(stack, "proxied")
    assert found["external"] == "https://gatehold.test:8443/proxied/links"
    assert found["host_url"] == "https://gatehold.test:8443/"
    assert found["seen"]["HTTP_X_FORWARDED_PROTO"] == "https"
    assert found["seen"]["HTTP_X_FORWARDED_HOST"] == "gatehold.test:8443"


async def test_preserve_host_gives_an_app_that_reads_no_forwarded_headers_the_public_host(
    tmp_path: Path, apps: dict[str, str]
) -> None:
    async with gateway(tmp_path, apps) as stack:
        own_host = await links(stack, "plain")
        public_host = await links(stack, "plain-host")
        behind_proxyfix = await links(stack, "proxied-host")
    app_address = apps["PLAIN_URL"].removeprefix("http://")
    assert own_host["host_url"] == f"http://{app_address}/", "without it: the app's address"
    assert own_host["seen"]["HTTP_HOST"] == app_address
    assert public_host["external"] == "http://gatehold.test/plain-host/links"
    assert public_host["host_url"] == "http://gatehold.test/"
    assert public_host["seen"]["HTTP_HOST"] == "gatehold.test", "not the client's Host"
    assert behind_proxyfix["external"] == "http://gatehold.test/proxied-host/links"
    for found in (own_host, public_host, behind_proxyfix):
        assert_nothing_spoofed_arrived(found["seen"])


async def test_a_redirect_built_from_the_preserved_host_names_the_public_url(
    tmp_path: Path, apps: dict[str, str]
) -> None:
    """An app that reads only ``Host`` knows the public host but not the scheme people
    use: its absolute redirect is rewritten to ``server.public_url``."""
    async with gateway(tmp_path, apps, public_url="https://gatehold.test") as stack:
        headers = [*SPOOFED, *stack.cookie("alice@acme.test").items()]
        response = await stack.client.get(
            "/plain-host/away", headers=headers, allow_redirects=False
        )
        assert response.status == 302, await response.text()
        assert response.headers["Location"] == "https://gatehold.test/plain-host/links"
