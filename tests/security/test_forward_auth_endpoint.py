"""Forward-auth: ``/.gatehold/auth`` decides exactly as the proxy does, in every dialect.

A front proxy (nginx ``auth_request``, Caddy ``forward_auth``, Traefik ``forwardAuth``,
ingress-nginx ``auth-url``) names the request it holds in headers and moves the bytes
itself. Each attack here is sent the way a front proxy would pass it on; each test
shows the answer, that nothing reached Ledger (the endpoint never forwards), and the
audit row, which says the decision was a forward-auth one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from multidict import CIMultiDict
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.cli import main
from tests.integration.test_i2_canonical_target import BYPASSES
from tests.integration.test_i3_idor_matrix import PEOPLE, Case, expected_status, matrix
from tests.support.stack import DEMO_RULES, Stack, running_stack
from tests.support.store_faults import sqlite_locked

PUBLIC_HOST = "gatehold.test"
AUTH = "/.gatehold/auth"
IDENTITY = (
    "X-Gatehold-User",
    "X-Gatehold-Email",
    "X-Gatehold-Tenant",
    "X-Gatehold-Roles",
    "X-Gatehold-Assertion",
)
CLIENT = "203.0.113.7"
"""The client's address as the front proxy reports it in X-Forwarded-For."""


def dialect_headers(dialect: str, method: str, uri: str) -> dict[str, str]:
    """The headers each front proxy sets on its auth subrequest (see its docs / config)."""
    if dialect == "nginx":  # auth_request with proxy_set_header X-Original-*
        return {"X-Original-Method": method, "X-Original-URI": uri, "X-Forwarded-For": CLIENT}
    forwarded = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Uri": uri,
        "X-Forwarded-Host": PUBLIC_HOST,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": CLIENT,
    }
    if dialect == "caddy":
        return forwarded
    if dialect == "traefik":
        return forwarded | {"X-Forwarded-Port": "443", "X-Forwarded-Server": "traefik-0"}
    assert dialect == "ingress-nginx"
    return {
        "X-Original-URL": f"https://{PUBLIC_HOST}{uri}",
        "X-Original-Method": method,
        "X-Sent-From": "nginx-ingress-controller",
        "X-Real-IP": CLIENT,
        "X-Forwarded-For": CLIENT,
        "X-Auth-Request-Redirect": uri,
    }


RULES = yaml.safe_load(DEMO_RULES.read_text())
DIALECTS = ("nginx", "caddy", "traefik", "ingress-nginx")
AMBIGUOUS = {name: target for name, target in BYPASSES.items() if "gatehold" not in target}
"""The bypass corpus of I2 (the gateway's own pages are never asked about here)."""
DIALECT_ROW = {"nginx": "nginx", "caddy": "forwarded", "traefik": "forwarded"}
DIALECT_ROW["ingress-nginx"] = "ingress-nginx"


@asynccontextmanager
async def fa_stack(data_dir: Path, **overrides: Any) -> AsyncIterator[Stack]:
    """The demo stack with the endpoint on and the test client as the front proxy."""
    settings: dict[str, Any] = {
        "server": {"public_url": f"http://{PUBLIC_HOST}", "trusted_proxies": ["127.0.0.1/32"]},
        "forward_auth": {"enabled": True},
    }
    settings.update(overrides)
    async with running_stack(data_dir, **settings) as stack:
        yield stack


async def ask(
    stack: Stack,
    dialect: str,
    method: str,
    uri: str,
    person: str | None = None,
    *,
    extra: dict[str, str] | None = None,
    accept: str = "application/json",
) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    """The endpoint's answer: status, headers, problem (``{}`` when not a problem)."""
    headers = dialect_headers(dialect, method, uri) | {"Accept": accept}
    if person is not None:
        headers |= stack.cookie(person)
    headers |= extra or {}
    auth = AUTH
    if dialect == "caddy" and "?" in uri:  # Caddy keeps the original query on the auth URI
        auth += "?" + uri.split("?", 1)[1]
    async with stack.client.get(auth, headers=headers) as response:
        body = await response.read()
        problem = json.loads(body) if response.content_type == "application/problem+json" else {}
        return response.status, response.headers.copy(), problem


async def request_rows(stack: Stack) -> dict[str, dict[str, Any]]:
    """The committed ``request`` rows by request id, ``data`` decoded."""
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(text("SELECT * FROM audit_log WHERE kind = 'request'"))
        found = {row.request_id: dict(row._mapping) for row in rows}
    for row in found.values():
        row["data"] = json.loads(row["data"])
    return found


async def forwarded_decisions(stack: Stack) -> list[str]:
    """Request ids of forward-auth decisions that reached Ledger (there must be none)."""
    decided = [rid for rid, row in (await request_rows(stack)).items() if row["data"].get("via")]
    decided += [r["request_id"] for r in await stack.events("rejected")]
    hits = await stack.ledger_hits()
    return [rid for rid in decided if hits.get(rid)]


def fits(case: Case) -> bool:
    """Whether forward-auth can decide ``case``: read from the rules file, not the code."""
    path = case.path.split("?", 1)[0]
    for route in RULES["routes"]:
        if not _matches(route["match"]["path"], path):
            continue
        methods = route["match"].get("methods")
        if methods is not None and case.method not in methods:
            continue
        return not (full_proxy_keys(route) or (case.method == "POST"))
    raise AssertionError(f"no route for {case.method} {case.path}")


def full_proxy_keys(route: dict[str, Any]) -> set[str]:
    """The rule keys of a route (besides POST) that make it need the full proxy."""
    keys = {"body_ids", "body_tenant", "upload", "guard", "file", "creates", "bind"}
    found = keys & set(route)
    if route.get("websocket"):
        found.add("websocket")
    return found


def _matches(pattern: str, path: str) -> bool:
    want, got = pattern.strip("/").split("/"), path.strip("/").split("/")
    if want and want[-1].endswith(":path}"):
        return got[: len(want) - 1] == want[:-1] or _same(want[:-1], got[: len(want) - 1])
    return len(want) == len(got) and _same(want, got)


def _same(want: list[str], got: list[str]) -> bool:
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and w.endswith("}")) or (w.startswith("{") and "}." in w)
        for w, g in zip(want, got, strict=True)
    )


async def test_the_idor_matrix_gets_the_proxys_answers_through_every_dialect(
    tmp_path: Path,
) -> None:
    cases = matrix()
    wrong: list[str] = []
    asked: list[tuple[str, str, Case, str | None]] = []
    # ID guessing is slowed down after 10 distinct refused ids; the matrix refuses many
    # on purpose, so the defence's pauses are lifted here (it has tests of its own).
    patient = {"enumeration": {"slow_after": 10_000, "block_after": 20_000}}
    async with fa_stack(tmp_path, policy=patient) as stack:
        for index, case in enumerate(cases):
            dialect = DIALECTS[index % len(DIALECTS)]
            for person in PEOPLE:
                status, headers, problem = await ask(stack, dialect, case.method, case.path, person)
                asked.append((headers["X-Request-Id"], dialect, case, person))
                want = expected_status(person, case) if fits(case) else 403
                if want is None and (status != 200 or any(h not in headers for h in IDENTITY)):
                    wrong.append(f"{dialect} {person} {case.method} {case.path}: {status}")
                elif want is not None and status != want:
                    wrong.append(f"{dialect} {person} {case.method} {case.path}: {status}≠{want}")
                if (
                    not fits(case)
                    and problem.get("type") != "/.gatehold/problems/full-proxy-required"
                ):
                    wrong.append(f"{dialect} {person} {case.method} {case.path}: {problem}")
                if case.method == "GET" and fits(case):
                    wrong += await _same_as_the_proxy(stack, person, case, status, problem)
        hits = await stack.ledger_hits()
        rows = await request_rows(stack)
    reached = [rid for rid, *_ in asked if hits.get(rid)]
    assert not reached, f"the endpoint's decisions reached Ledger: {reached[:5]}"
    for request_id, dialect, case, person in asked:
        row = rows.get(request_id)
        if row is None or row["data"].get("via") != "forward-auth":
            wrong.append(f"{dialect} {person} {case.method} {case.path}: audit row {row}")
        elif row["data"]["dialect"] != DIALECT_ROW[dialect]:
            wrong.append(f"{dialect}: audit row says {row['data']['dialect']}")
        elif row["data"]["client"] != CLIENT:
            wrong.append(f"{dialect}: audit row's client {row['data']['client']}")
    assert len(asked) >= 500, len(asked)
    assert not wrong, f"{len(wrong)} of {len(asked)} wrong:\n" + "\n".join(wrong[:40])
    print(f"forward-auth IDOR matrix: {len(asked)} decisions in 4 dialects, as the rules say")


async def _same_as_the_proxy(
    stack: Stack, person: str | None, case: Case, status: int, problem: dict[str, Any]
) -> list[str]:
    """The proxy's own answer to the same GET: same status and problem type."""
    headers = {"Accept": "application/json"} | (stack.cookie(person) if person else {})
    async with stack.client.get(case.path, headers=headers) as response:
        body = await response.read()
        theirs = json.loads(body) if response.content_type == "application/problem+json" else {}
        if response.status != status or theirs.get("type") != problem.get("type"):
            return [f"proxy {person} GET {case.path}: {response.status} vs endpoint {status}"]
    return []


async def test_ambiguous_raw_targets_are_400_in_every_dialect(tmp_path: Path) -> None:
    wrong = []
    answered: dict[str, str] = {}
    async with fa_stack(tmp_path) as stack:
        for dialect in DIALECTS:
            for name, target in AMBIGUOUS.items():
                if dialect == "ingress-nginx" and not target.startswith("/"):
                    continue  # an absolute URL cannot carry another absolute URL
                status, headers, problem = await ask(
                    stack, dialect, "GET", target, "admin@example.test"
                )
                answered[headers["X-Request-Id"]] = f"{dialect} {name}"
                if status != 400:
                    wrong.append(f"{dialect} {name} ({target}): {status} {problem.get('type')}")
        rows = {row["request_id"]: row for row in await stack.events("rejected")}
        hits = await stack.ledger_hits()
    for request_id, what in answered.items():
        row = rows.get(request_id)
        # Caddy puts the original query on the auth URI too: a bad one is refused as
        # an address of the gateway's own before the endpoint runs (audited as such).
        own = row is not None and row["data"].get("raw_target", "").startswith(AUTH + "?")
        if hits.get(request_id):
            wrong.append(f"{what}: reached Ledger")
        if row is None or not (own or row["data"].get("via") == "forward-auth"):
            wrong.append(f"{what}: not audited as a forward-auth rejection: {row}")
    assert not wrong, "\n".join(wrong)


async def test_client_identity_headers_are_never_echoed_and_other_spellings_refused(
    tmp_path: Path,
) -> None:
    spoofed = {name: "mallory" for name in IDENTITY}
    async with fa_stack(tmp_path) as stack:
        for dialect in DIALECTS:
            # The exact names: the front proxy copies the answer's over them.
            status, headers, _ = await ask(
                stack, dialect, "GET", "/api/invoices/1", "alice@acme.test", extra=spoofed
            )
            assert status == 200
            assert headers["X-Gatehold-Email"] == "alice@acme.test"
            assert "mallory" not in repr(list(headers.items())), headers
            # Anonymous on a public route: every header present, each one empty.
            status, headers, _ = await ask(
                stack, dialect, "GET", "/static/ledger.css", extra=spoofed
            )
            assert status == 200
            assert {h: headers[h] for h in IDENTITY} == dict.fromkeys(IDENTITY, "")
        # Spellings a front proxy passes on and an app folds into a trusted name, and
        # identity headers of other proxies the app may trust: refused, audited.
        for name in (
            "X_Gatehold_User",
            "X.Gatehold.Tenant",
            "X-Remote-User",
            "X-Forwarded-User",
            "X-Http-Method-Override",
            "X-Gatehold-Admin",
            "Remote-Email",
        ):
            status, headers, problem = await ask(
                stack, "caddy", "GET", "/api/invoices/1", "alice@acme.test", extra={name: "x"}
            )
            assert status == 400, (name, status)
            assert problem["type"] == "/.gatehold/problems/header-invalid"
            assert name in problem["detail"]
            rows = await stack.events("rejected")
            mine = [r for r in rows if r["request_id"] == headers["X-Request-Id"]]
            assert mine and mine[0]["actor"] == "alice@acme.test", mine  # the caller named
        assert not await forwarded_decisions(stack)


async def test_a_second_dialect_naming_another_target_or_method_is_refused(
    tmp_path: Path,
) -> None:
    """nginx and Caddy pass the client's headers on: a client adds another dialect's."""
    async with fa_stack(tmp_path) as stack:
        for dialect, extra in (
            ("caddy", {"X-Original-URI": "/static/ledger.css"}),
            ("nginx", {"X-Forwarded-Uri": "/static/ledger.css"}),
            ("nginx", {"X-Original-URL": f"https://{PUBLIC_HOST}/static/ledger.css"}),
            ("caddy", {"X-Original-Method": "GET"} | {"X-Forwarded-Method": "DELETE"}),
            ("ingress-nginx", {"X-Forwarded-Host": "evil.test"}),
        ):
            headers = dialect_headers(dialect, "GET", "/api/invoices/2") | extra
            headers |= {"Accept": "application/json"}
            async with stack.client.get(AUTH, headers=headers) as response:
                problem = await response.json(content_type=None)
                assert response.status == 400, (dialect, extra, response.status)
                assert problem["type"] == "/.gatehold/problems/header-invalid"
        async with stack.client.get(AUTH, headers={"Accept": "application/json"}) as response:
            assert response.status == 400  # no original named at all
        twice = CIMultiDict(dialect_headers("nginx", "GET", "/static/ledger.css"))
        twice.add("X-Original-URI", "/api/invoices/2")
        async with stack.client.get(AUTH, headers=twice) as response:
            assert response.status == 400  # one header, two values: which one is it?
        lower = dialect_headers("nginx", "get", "/static/ledger.css")
        async with stack.client.get(AUTH, headers=lower) as response:
            assert response.status == 400  # not a method name nginx would pass on
        assert not await forwarded_decisions(stack)


async def test_sign_in_refusal_is_a_401_naming_the_same_site_sign_in(tmp_path: Path) -> None:
    async with fa_stack(tmp_path) as stack:
        for dialect in DIALECTS:
            status, headers, _ = await ask(
                stack, dialect, "GET", "/api/invoices/1?x=1", accept="text/html"
            )
            assert status == 401, status  # never a 302: nginx's auth_request passes 401 only
            login = headers["X-Gatehold-Login"]
            assert headers["Location"] == login
            assert login == "/.gatehold/login?rd=/api/invoices/1%3Fx%3D1"
        status, _, _ = await ask(stack, "nginx", "GET", "http://evil.test/api/invoices/1")
        assert status == 400  # an absolute target for another host never becomes an rd


async def test_routes_that_need_the_body_or_the_answer_are_refused(tmp_path: Path) -> None:
    cases = {
        "body_ids": ("PATCH", "/api/invoices/1"),
        "body_tenant": ("PUT", "/api/items/1"),
        "upload": ("POST", "/files"),
        "guard": ("GET", "/api/invoices"),
        "bind": ("GET", "/api/items"),
        "file": ("GET", "/files/1"),
        "learn_on_create": ("POST", "/api/reports"),
        "websocket": ("GET", "/ws/acme/feed"),
        "method override in a POST body": ("POST", "/t/acme/notes/1"),
    }
    async with fa_stack(tmp_path) as stack:
        for what, (method, path) in cases.items():
            status, headers, problem = await ask(stack, "nginx", method, path, "admin@example.test")
            assert status == 403, (what, status)
            assert problem["type"] == "/.gatehold/problems/full-proxy-required", what
            assert headers["X-Gatehold-Status"] == "403"
            row = (await stack.audit_rows(headers["X-Request-Id"]))[0]
            assert (row["decision"], row["reason"]) == ("deny", "full-proxy-required"), what
            assert json.loads(row["data"])["via"] == "forward-auth"
        # The same route's other methods stay decidable: DELETE on the tenant area.
        status, _, _ = await ask(stack, "nginx", "DELETE", "/t/acme/notes/1", "admin@example.test")
        assert status == 200
        assert not await forwarded_decisions(stack)


async def test_the_settings_shape_what_the_endpoint_decides_and_refuses(
    tmp_path: Path,
) -> None:
    """POSTs are decided when no app reads ``_method``; ``headers.strip`` names are
    refused like the built-in ones."""
    fa = {"enabled": True, "apps_read_method_override": False}
    strip = {"strip": ["X-Legacy-*"]}
    async with fa_stack(tmp_path, forward_auth=fa, headers=strip) as stack:
        status, _, _ = await ask(stack, "caddy", "POST", "/t/acme/notes/1", "alice@acme.test")
        assert status == 200
        status, _, problem = await ask(stack, "caddy", "POST", "/files", "alice@acme.test")
        assert problem["type"] == "/.gatehold/problems/full-proxy-required"
        status, _, problem = await ask(
            stack, "nginx", "GET", "/api/invoices/1", "alice@acme.test", extra={"X_Legacy_Uid": "1"}
        )
        assert (status, problem["type"]) == (400, "/.gatehold/problems/header-invalid")
        assert not await forwarded_decisions(stack)


async def test_the_audit_record_is_committed_before_the_200(tmp_path: Path) -> None:
    async with fa_stack(tmp_path, store={"lock_timeout": 2.0}) as stack:
        status, headers, _ = await ask(stack, "nginx", "GET", "/api/invoices/1", "alice@acme.test")
        assert status == 200
        async with stack.app[ENGINE].connect() as conn:  # no waiting: it is there already
            found = await conn.execute(
                text("SELECT decision FROM audit_log WHERE request_id = :r AND kind = 'request'"),
                {"r": headers["X-Request-Id"]},
            )
            assert [row.decision for row in found] == ["allow"]
        database = Path(str(stack.app[ENGINE].url.database))
        async with sqlite_locked(database):
            began = time.monotonic()
            async with asyncio.timeout(30):
                status, headers, problem = await ask(
                    stack, "nginx", "GET", "/api/invoices/1", "alice@acme.test"
                )
        assert status == 503, status  # never a 200 the store has not recorded
        assert problem["type"] == "/.gatehold/problems/audit-unavailable"
        assert "X-Gatehold-Email" not in headers
        assert time.monotonic() - began < 30
        status, _, _ = await ask(stack, "nginx", "GET", "/api/invoices/1", "alice@acme.test")
        assert status == 200  # recovered without a restart


async def test_cookie_and_authorization_passed_on_without_the_gateways_own(
    tmp_path: Path,
) -> None:
    async with fa_stack(tmp_path) as stack:
        session = stack.cookie("alice@acme.test")["Cookie"]
        extra = {"Cookie": f"theme=dark; {session}; lang=en", "Authorization": "Basic YTpi"}
        status, headers, _ = await ask(stack, "traefik", "GET", "/api/invoices/1", extra=extra)
        assert status == 200
        assert headers["X-Gatehold-Cookie"] == "theme=dark; lang=en"
        assert headers["X-Gatehold-Authorization"] == "Basic YTpi"
        status, headers, _ = await ask(
            stack, "traefik", "GET", "/api/invoices/1", "alice@acme.test"
        )
        assert headers["X-Gatehold-Cookie"] == ""  # present, empty (Caddy 2.6's placeholder)
        # HEAD, as some front proxies ask: the same decision and headers, no body.
        head = dialect_headers("nginx", "GET", "/api/invoices/1") | stack.cookie("alice@acme.test")
        async with stack.client.head(AUTH, headers=head) as response:
            assert response.status == 200
            assert response.headers["X-Gatehold-Email"] == "alice@acme.test"


async def test_only_trusted_proxies_may_ask_and_only_when_enabled(tmp_path: Path) -> None:
    untrusted = {"public_url": f"http://{PUBLIC_HOST}", "trusted_proxies": ["192.0.2.0/24"]}
    (tmp_path / "untrusted").mkdir()
    async with fa_stack(tmp_path / "untrusted", server=untrusted) as stack:
        status, headers, problem = await ask(
            stack, "nginx", "GET", "/api/invoices/1", "alice@acme.test"
        )
        assert status == 403
        assert problem["type"] == "/.gatehold/problems/proxy-untrusted"
        assert "X-Gatehold-Email" not in headers
        rows = await stack.events("rejected")
        mine = [r for r in rows if r["request_id"] == headers["X-Request-Id"]]
        assert mine and mine[0]["reason"] == "proxy-untrusted"
        assert mine[0]["data"]["peer"] == "127.0.0.1"
        assert not await forwarded_decisions(stack)
    (tmp_path / "off").mkdir()
    async with running_stack(tmp_path / "off", server=untrusted | {"trusted_proxies": []}) as off:
        status, headers, problem = await ask(
            off, "nginx", "GET", "/api/invoices/1", "alice@acme.test"
        )
        assert status == 404
        assert "X-Gatehold-Email" not in headers


def test_rules_check_lists_the_routes_that_need_the_full_proxy() -> None:
    rules = RULES
    needing = {
        route["name"]
        for route in rules["routes"]
        if full_proxy_keys(route) or "POST" in route["match"].get("methods", ["POST"])
    }
    result = CliRunner().invoke(main, ["rules", "check", str(DEMO_RULES), "--mode", "forward-auth"])
    assert result.exit_code == 0, result.output
    listed = {
        line.strip().split(":", 1)[0]
        for line in result.output.splitlines()
        if line.startswith("  ") and not line.startswith("    ")
    }
    assert listed == needing, (listed ^ needing, result.output)
    assert f"{len(needing)} of {len(rules['routes'])} routes need the full proxy" in result.output
