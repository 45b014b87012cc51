"""``gatehold serve`` logs on stderr: a start line, one access line per request, a
shutdown line, one line for a request the parser refuses, and never a secret.

A real ``gatehold serve`` in front of the demo Ledger, JSON logs: a person signs in by
magic link (outbox mail), browses with the session cookie, posts a CSRF-protected form,
an API key reads, a request is refused, a malformed one is sent on a raw socket, the
process is stopped; then every stderr line is parsed and the whole log is searched for
each secret the run used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_cli import gatehold
from tests.support.rawhttp import raw_request
from tests.support.served import (
    BIND,
    CSRF,
    LINK,
    NONCE,
    SESSION_COOKIE,
    ledger_process,
    mail_text,
    serving,
    settings_file,
    wait_for_port,
)
from tests.support.servers_base import free_port

ACCESS_FIELDS = {
    "request_id",
    "client",
    "caller",
    "method",
    "path",
    "route",
    "decision",
    "reason",
    "status",
    "bytes",
    "duration_ms",
}


@dataclass
class Run:
    """What the test did to the gateway, and the secrets it used."""

    port: int
    config: Path
    tmp: Path
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass
class Served:
    run: Run
    log: Path
    process: subprocess.Popen[bytes]
    ledger: subprocess.Popen[bytes]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with ledger_process(tmp_path) as ledger:
        config = settings_file(
            tmp_path / "gatehold.yaml",
            ledger,
            port=free_port(),
            logging={"format": "json", "level": "info"},
        )
        assert gatehold("tenants", "add", "acme", config=config).returncode == 0
        added = gatehold(
            "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard",
            config=config,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        with serving(config, tmp_path / "serve.log") as server:
            yield Served(
                Run(server.port, config, tmp_path), server.log, server.process, ledger.process
            )


async def _traffic(run: Run) -> None:
    """Sign in by magic link, use the session and an API key, be refused, be malformed."""
    base = f"http://127.0.0.1:{run.port}"
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(base, cookie_jar=jar) as client:

        async def call(method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
            response = await client.request(method, path, allow_redirects=False, **kwargs)
            await response.read()
            run.requests.append((method, path.split("?", 1)[0], response.status))
            return response

        assert (await call("GET", "/.gatehold/health")).status == 200
        asked = await call(
            "POST",
            "/.gatehold/login/magic",
            data={"email": "alice@acme.test", "rd": "/"},
            headers={"Cookie": BIND},
        )
        assert asked.status == 200
        token = ""
        for _ in range(100):
            mails = list((run.tmp / "outbox").glob("*.eml"))
            found = LINK.search(mail_text(mails[0])) if mails else None
            if found:
                token = found.group(1)
                break
            await asyncio.sleep(0.05)
        assert token, "no magic link in the outbox"
        run.secrets["magic-link token"] = token
        page = await call("GET", f"/.gatehold/login/magic/confirm?token={token}")
        assert page.status == 200
        nonce = NONCE.search(await page.text())
        assert nonce
        confirm = page.cookies["__Host-gatehold-confirm"].value
        run.secrets["confirm cookie"] = confirm
        run.secrets["confirm nonce"] = nonce.group(1)
        signed_in = await call(
            "POST",
            "/.gatehold/login/magic/confirm",
            data={"token": token, "nonce": nonce.group(1)},
            headers={"Cookie": f"__Host-gatehold-confirm={confirm}; {BIND}"},
        )
        assert signed_in.status in (302, 303), await signed_in.text()
        session = signed_in.cookies[SESSION_COOKIE].value
        run.secrets["session cookie"] = session
        run.secrets["session id hash"] = hashlib.sha256(session.encode()).hexdigest()
        cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
        listed = await call(
            "GET", "/api/invoices", headers={**cookie, "X-Request-Id": "client-trace-42"}
        )
        assert listed.status == 200
        sessions = await call("GET", "/.gatehold/sessions", headers=cookie)
        assert sessions.status == 200
        csrf = CSRF.search(await sessions.text())
        assert csrf
        run.secrets["csrf token"] = csrf.group(1)
        # The API key reads; its write is refused; nobody's request is refused.
        created = gatehold(
            "apikey", "create", "--tenant", "acme", "--role", "readonly", "--expires", "1d",
            config=run.config,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        run.secrets["api key"] = key
        bearer = {"Authorization": f"Bearer {key}", "X-Request-Id": "not well formed!"}
        assert (await call("GET", "/api/invoices", headers=bearer)).status == 200
        assert (await call("POST", "/api/invoices", headers=bearer, json={})).status == 403
        anonymous = await call("GET", "/api/invoices", headers={"Accept": "application/json"})
        assert anonymous.status == 401
        logged_out = await call(
            "POST", "/.gatehold/logout", data={"csrf": csrf.group(1)}, headers=cookie
        )
        assert logged_out.status in (302, 303)
    # The parser refuses these: a NUL or a raw non-ASCII byte in the target, an unknown
    # method, a header too large (the session cookie in it).
    oversized = {"Cookie": f"{SESSION_COOKIE}={session}; pad={'x' * 20_000}"}
    for method, target, headers in (
        ("GET", b"/api/\x00invoices", {"Cookie": f"{SESSION_COOKIE}={session}"}),
        ("GET", b"/api/invoices\xff", {}),
        ("G\x01T", b"/api/invoices", {}),
        ("GET", b"/api/invoices", oversized),
    ):
        malformed = await raw_request("127.0.0.1", run.port, method, target, headers=headers)
        assert malformed.status in (400, 431), malformed
        assert session.encode() not in malformed.body
        run.requests.append(("", "", malformed.status))


def _get(run: Run, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{run.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def _lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    assert text.strip(), "nothing was logged"
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line is not JSON: {raw!r}\n{text}")
    return lines


def test_serve_logs_start_access_and_shutdown_lines_without_secrets(served: Served) -> None:
    run = served.run
    asyncio.run(_traffic(run))
    served.ledger.terminate()  # the upstream fails: its request is logged as a warning
    served.ledger.wait(10)
    failed = _get(run, "/api/invoices", {"Authorization": f"Bearer {run.secrets['api key']}"})
    assert failed in (502, 503, 504)
    run.requests.append(("GET", "/api/invoices", failed))
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0
    lines = _lines(served.log)
    text = served.log.read_text()

    (start,) = [line for line in lines if line["message"] == "gatehold started"]
    assert start["level"] == "info" and start["logger"] == "gatehold"
    assert start["version"] and start["workers"] == 1 and start["store"] == "sqlite"
    assert start["listeners"] == [f"http://127.0.0.1:{run.port}"]
    assert isinstance(start["rules_version"], int) and start["rules_version"] >= 1
    assert lines[-1]["message"] == "gatehold stopped"

    access = [line for line in lines if line["logger"] == "gatehold.access"]
    assert [(a["method"], a["status"]) for a in access] == [
        (method, status) for method, _, status in run.requests
    ], text
    for line, (_, path, _) in zip(access, run.requests, strict=True):
        assert ACCESS_FIELDS <= line.keys(), line
        assert re.fullmatch(r"[0-9a-f-]{16,}", line["request_id"]), line
        assert line["client"] == "127.0.0.1"
        assert line["path"] == path or not path
        assert isinstance(line["bytes"], int) and line["duration_ms"] >= 0
    assert len({line["request_id"] for line in access}) == len(access)
    pages = [a for a in access if a["path"].startswith("/.gatehold/")]
    assert pages and {a["route"] for a in pages} == {"gatehold"}
    by_path = [(a["method"], a["path"], a) for a in access]
    listed = [a for m, p, a in by_path if (m, p) == ("GET", "/api/invoices")]
    by_cookie, by_key, anonymous, upstream_down = listed
    assert upstream_down["level"] == "warning" and upstream_down["caller"] == "apikey:1"
    assert upstream_down["reason"].startswith("upstream-"), upstream_down
    assert [line["level"] for line in access].count("warning") == 1
    assert by_cookie["caller"] == "alice@acme.test" and by_cookie["route"] == "invoice-list"
    assert by_cookie["decision"] == "allow" and by_cookie["bytes"] > 0
    assert by_cookie["client_request_id"] == "client-trace-42"
    assert "client_request_id" not in by_key, "a malformed client id was kept"
    assert by_key["decision"] == "allow" and by_key["caller"] != "anonymous"
    assert anonymous["caller"] == "anonymous" and anonymous["decision"] == "deny"
    assert anonymous["reason"]
    (refused,) = [a for m, p, a in by_path if (m, p) == ("POST", "/api/invoices")]
    assert refused["decision"] == "deny" and refused["reason"] and refused["status"] == 403
    (signed_in,) = [
        a for m, p, a in by_path if (m, p) == ("POST", "/.gatehold/login/magic/confirm")
    ]
    assert signed_in["caller"] == "alice@acme.test", signed_in
    malformed = access[-5:-1]
    assert all(m["reason"] == "request-malformed" and m["decision"] == "deny" for m in malformed)
    # One line per malformed request, never a traceback.
    assert "Traceback" not in text and "traceback" not in text
    assert not [line for line in lines if line["level"] in ("error", "critical")], text

    for what, secret in run.secrets.items():
        assert secret not in text, f"the {what} is in the log"


def test_the_demo_logs_text_lines_each_about_its_own_request(tmp_path: Path) -> None:
    """Start-up writes audit records before serving; no request's line may carry them."""
    port = free_port()
    log = tmp_path / "demo.log"
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "demo",
                "--port",
                str(port),
                "--data",
                str(tmp_path / "demo"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        ) as demo,  # fmt: skip
    ):
        try:
            wait_for_port(port, demo, log)
            run = Run(port, tmp_path / "demo" / "gatehold.yaml", tmp_path)
            assert _get(run, "/api/invoices", {"Accept": "application/json"}) == 401
            assert _get(run, "/.gatehold/health", {}) == 200
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(30) == 0
    text = log.read_text()
    access = [line for line in text.splitlines() if " gatehold.access " in line]
    refused, health = access
    assert " caller=anonymous " in refused and " route=invoice-list decision=deny " in refused
    assert ' caller="" ' in health, health  # the page wrote no audit record
    assert ' path=/.gatehold/health route=gatehold decision="" reason="" status=200 ' in health
    ids = [re.search(r" request_id=(\S+)", line) for line in access]
    assert all(ids) and len({found.group(1) for found in ids if found}) == 2
    assert ' "gatehold started" version=' in text and text.rstrip().endswith('"gatehold stopped"')
    assert "alembic" not in text and "Traceback" not in text
