"""Every answer the gateway writes itself carries ``X-Content-Type-Options: nosniff``.

Without it a browser may sniff a gateway page, a JSON answer or a static file into
HTML or script. The routes are walked from the application's own router, so a page
added later is checked too; refusals of the pipeline (problem+json, HTML, sign-in
redirects, ingress 400s) are checked beside them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.runtime import start_gateway
from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.rawhttp import raw_request
from tests.support.servers_base import free_port
from tests.support.stack import Stack, demo_settings, ledger_server, running_stack

SAMPLE = {
    "provider": "nope",
    "filename": "gatehold.css",
    "email": "alice@acme.test",
    "tenant": "acme",
    "role": "standard",
    "key_id": "1",
    "version": "1",
    "request": "1",
    "tail": "/nothing",
}
"""Values for the routes' path parameters; any other parameter gets ``1``."""


def own_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every gateway page, parameters filled with sample values."""
    found = []
    for route in app.router.routes():
        if route.name == "pipeline" or route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:  # static files
            path = f"{info['prefix']}/gatehold.css"
        else:
            path = str(info.get("path") or info.get("formatter", ""))
            path = path.format_map(defaultdict(lambda: "1", SAMPLE))
        found.append(("GET" if route.method == "*" else route.method, path))
    return found


async def answers(stack: Stack, method: str, path: str, headers: dict[str, str]) -> list[str]:
    """Problems of one request's answer: a missing or wrong nosniff header."""
    response = await stack.client.request(method, path, headers=headers, allow_redirects=False)
    await response.read()
    value = response.headers.get("X-Content-Type-Options")
    return [] if value == "nosniff" else [f"{method} {path} -> {response.status}: {value!r}"]


async def test_every_gateway_page_says_nosniff(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        routes = own_routes(stack.app)
        assert ("GET", "/.gatehold/jwks.json") in routes
        assert ("GET", "/.gatehold/static/gatehold.css") in routes
        assert ("GET", "/.gatehold/admin/users/alice@acme.test") in routes  # the admin UI's
        assert len(routes) >= 12
        missing: list[str] = []
        signed_in = stack.cookie("alice@acme.test")
        for method, path in routes:
            for headers in ({}, signed_in, {**signed_in, "Accept": "text/html"}):
                missing += await answers(stack, method, path, headers)
        missing += await answers(stack, "GET", "/.gatehold/static/missing.css", {})
        missing += await answers(stack, "HEAD", "/.gatehold/health", {})
    assert missing == []


async def test_every_refusal_says_nosniff(tmp_path: Path) -> None:
    html = {"Accept": "text/html"}
    api = {"Accept": "application/json"}
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        cookie = stack.cookie("alice@acme.test")
        cases = [
            ("GET", "/api/echo/x", api),  # sign in first: 401 problem+json
            ("GET", "/api/echo/x", html),  # sign in first: 302 to the login page
            ("POST", "/api/echo/x", html),  # sign in first: 401 HTML page
            ("GET", "/no/such/route", {**cookie, **api}),  # 404 problem+json
            ("GET", "/no/such/route", {**cookie, **html}),  # 404 HTML page
            ("GET", "/big/1", {**cookie, "Authorization": "Bearer nonsense"}),  # 401
            ("GET", "/down", {**cookie, **api}),  # 502: the upstream is not reachable
        ]
        missing: list[str] = []
        for method, path, headers in cases:
            missing += await answers(stack, method, path, headers)
        server = stack.client.server
        assert server.port is not None
        for target in ("/a/%2e%2e/b", "/%2Egatehold/login", "/a//b"):  # refused at ingress
            raw = await raw_request("127.0.0.1", server.port, "GET", target, api)
            if raw.status != 400 or raw.headers.get("x-content-type-options") != "nosniff":
                missing.append(f"GET {target} -> {raw.status}: {raw.headers}")
    assert missing == []


async def test_the_admin_listener_says_nosniff(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    async with ledger_server(tmp_path) as ledger_url:
        server = {"public_url": f"http://127.0.0.1:{port}", "port": port, "admin_port": admin_port}
        settings = demo_settings(tmp_path, ledger_url, server=server)
        runners = await start_gateway(settings, {})
        try:
            async with aiohttp.ClientSession() as http:
                for path in ("/metrics", "/health", "/nothing-here"):
                    async with http.get(f"http://127.0.0.1:{admin_port}{path}") as response:
                        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
