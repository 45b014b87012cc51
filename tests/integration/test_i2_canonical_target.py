"""I2: one canonical target, matched and forwarded byte for byte; ambiguity is a 400.

Targets go out on a raw socket so nothing normalises them on the way. Ledger's echo
endpoint reports the raw path it received; the audit row records the path the
gateway matched. They must be equal, or the request must have been refused.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.rawhttp import RawResponse, raw_request
from tests.support.stack import Stack, running_stack

RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}"}
roles:
  standard: {can: [read, write]}
  admin: {can: [read, write, manage]}
routes:
  - name: echo
    match: {path: "/api/echo/{rest:path}"}
    upstream: ledger
  - name: admin-area
    match: {path: "/admin/{rest:path}"}
    upstream: ledger
    action: manage
  - name: admin-home
    match: {path: "/admin"}
    upstream: ledger
    action: manage
  - name: public
    match: {path: "/static/{rest:path}", methods: [GET]}
    upstream: ledger
    public: true
"""

BYPASSES = {
    "dot-dot segment": "/api/echo/../../admin",
    "dot-dot from a public route": "/static/../admin",
    "encoded dot-dot": "/static/%2e%2e/admin",
    "upper-case encoded dot-dot": "/static/%2E%2E/admin",
    "double slash": "//admin",
    "double slash inside": "/static//admin",
    "encoded slash": "/static/..%2fadmin",
    "encoded slash at the end": "/admin%2f",
    "matrix parameter": "/admin;x=1",
    "tomcat dot-dot-semicolon": "/static/..;/admin",
    "NUL byte": "/admin%00",
    "trailing dot segment": "/admin/.",
    "fullwidth solidus": "/static/..%EF%BC%8Fadmin",
    "backslash": "/static/..\\admin",
    "encoded backslash": "/static/..%5cadmin",
    "overlong UTF-8 dot": "/static/%C0%AE%C0%AE/admin",
    "double encoding": "/static/%252e%252e/admin",
    "absolute-form for another host": "http://evil.example/admin",
    "method override in query": "/api/echo/x?_method=DELETE",
    "broken escape": "/static/%zz",
    "gateway page by an encoded dot": "/%2Egatehold/login",
    "gateway page by an encoded letter": "/.gatehold/%6Cogin",
    "gateway keys by an encoded dot": "/.gatehold/jwks%2Ejson",
}


class StackThread:
    """A running stack on its own event loop, so hypothesis can drive it synchronously."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready: Future[Stack] = Future()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, args=(data_dir,), daemon=True)
        self._thread.start()
        self.stack = self._ready.result(timeout=30)

    def _run(self, data_dir: Path) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main(data_dir))
        finally:
            # An unclosed loop leaves its self-pipe sockets to the garbage collector,
            # whose ResourceWarning would then fail whichever test runs at that moment.
            self.loop.close()

    async def _main(self, data_dir: Path) -> None:
        async with running_stack(data_dir, rules_text=RULES) as stack:
            self._ready.set_result(stack)
            await self._stop.wait()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def send(self, target: str, cookie: bool = True) -> RawResponse:
        server = self.stack.client.server
        headers = {"Accept": "application/json"}
        if cookie:
            headers |= self.stack.cookie("alice@acme.test")
        return self.call(raw_request(server.host, server.port, "GET", target, headers))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackThread]:
    running = StackThread(tmp_path_factory.mktemp("i2"))
    yield running
    running.close()


@pytest.mark.parametrize("target", BYPASSES.values(), ids=BYPASSES.keys())
def test_bypass_trick_is_refused_and_never_reaches_the_app(
    gateway: StackThread, target: str
) -> None:
    before = gateway.call(gateway.stack.ledger_total())
    response = gateway.send(target)
    assert response.status == 400, (target, response.status, response.body[:200])
    assert gateway.call(gateway.stack.ledger_total()) == before, "Ledger was reached"
    if "x-request-id" in response.headers:
        rows = gateway.call(gateway.stack.audit_rows(response.headers["x-request-id"]))
        assert rows and rows[0]["reason"] == "target-ambiguous"


def test_case_is_not_folded_on_case_sensitive_routes(gateway: StackThread) -> None:
    before = gateway.call(gateway.stack.ledger_total())
    response = gateway.send("/ADMIN")
    assert response.status == 404
    assert gateway.call(gateway.stack.ledger_total()) == before


def test_the_admin_area_itself_is_refused_for_a_standard_user(gateway: StackThread) -> None:
    assert gateway.send("/admin/users").status == 403


def test_an_unreserved_escape_is_canonicalised_the_same_for_match_and_forward(
    gateway: StackThread,
) -> None:
    response = gateway.send("/api/echo/%7Euser/a%41/%c3%a9?q=%20x")
    assert response.status == 200
    assert response.json()["raw_path"] == "/api/echo/~user/aA/%C3%A9?q=%20x"


TOKENS = [
    *"aZ09-._~;:@!$&'()*+,= \\/",
    "%2e",
    "%2E",
    "%2F",
    "%5C",
    "%00",
    "%25",
    "%41",
    "%C3%A9",
    "%EF%BC%8F",
    "%C0%AE",
    "%zz",
    "é",
    "..",
    "%",
]
SEGMENT = st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    segments=st.lists(SEGMENT, min_size=1, max_size=4),
    query=st.sampled_from(["", "?a=1", "?b=%41"]),
)
def test_any_target_is_refused_or_forwarded_exactly_as_matched(
    gateway: StackThread, segments: list[str], query: str
) -> None:
    target = "/api/echo/s/" + "/".join(segments) + query
    try:
        raw = target.encode("utf-8")
    except UnicodeEncodeError:
        return
    response = gateway.call(
        raw_request(
            gateway.stack.client.server.host,
            gateway.stack.client.server.port,
            "GET",
            raw,
            {"Accept": "application/json"} | gateway.stack.cookie("alice@acme.test"),
        )
    )
    if response.status == 400:
        return
    if response.status in (403, 404):
        # Only possible when the canonical path left the echo route (it never may).
        pytest.fail(f"{target!r} was matched to another route: {response.status}")
    assert response.status == 200, (target, response.status, response.body[:300])
    forwarded = response.json()["raw_path"]
    rows = gateway.call(gateway.stack.audit_rows(response.headers["x-request-id"]))
    matched = rows[0]["path"]
    assert forwarded.split("?")[0] == matched, (target, forwarded, matched)
    assert forwarded.startswith("/api/echo/")
