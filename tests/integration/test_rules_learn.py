"""``gatehold rules learn`` on real traffic: the demo behind nginx, and httpbin's spec.

The demo run: a real Ledger process, a real ``gatehold serve`` with its JSON access
log, and a real nginx in front of it writing the combined log; signed-in people of
both tenants use every id-checked address of the demo (and some noise: foreign ids,
scanner misses, a preflight). ``rules learn`` reads both logs; its draft must route
every id-checked route of ``rules/demo.yaml`` with the same id parameter, pass
``rules check``, and — served by a gateway — refuse what it did not see and every
object it names, with nothing reaching Ledger.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config.loader import load_rules, load_rules_text
from gateway.config.settings import load_settings
from gateway.demo.run import seed_users
from gateway.model import IdSource, Route, RuleSet
from gateway.routing import Template, parse_template
from tests.integration.test_httpbin_upstream import httpbin  # noqa: F401 (a fixture)
from tests.support.cli import gatehold
from tests.support.front_proxy import binary
from tests.support.served import Ledger, ledger_process, serving, settings_file, wait_for_port
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, running_stack

PEOPLE = ("alice@acme.test", "carol@acme.test", "bob@globex.test", "rita@acme.test")


@contextmanager
def nginx_in_front(folder: Path, backend_port: int) -> Iterator[tuple[int, Path]]:
    """A real nginx proxying to ``backend_port``, writing the combined access log."""
    folder.mkdir(parents=True)
    (folder / "logs").mkdir()
    (folder / "tmp").mkdir()
    port = free_port()
    (folder / "nginx.conf").write_text(
        f"""
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log logs/access.log combined;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{backend_port}; }}
    }}
}}
"""
    )
    command = [binary("nginx"), "-p", f"{folder}/", "-c", "nginx.conf", "-g", "daemon off;"]
    with subprocess.Popen(command, cwd=folder, stderr=subprocess.DEVNULL) as process:
        try:
            wait_for_port(port, process, folder / "logs" / "error.log")
            yield port, folder / "logs" / "access.log"
        finally:
            process.send_signal(signal.SIGQUIT)
            process.wait(20)


@dataclass
class DemoLogs:
    ledger: Ledger
    combined: Path
    json_log: Path
    statuses: list[tuple[str, str, str, int]]
    """(who, method, target, status) of every request sent."""


async def _demo_traffic(base: str, cookies: dict[str, str]) -> list[tuple[str, str, str, int]]:
    """Signed-in people of acme and globex use the demo; some requests are noise."""
    sent: list[tuple[str, str, str, int]] = []
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.DummyCookieJar()) as client:

        async def call(who: str, method: str, target: str, **kw: Any) -> aiohttp.ClientResponse:
            headers = {"Accept": "application/json", **kw.pop("headers", {})}
            if who:
                headers["Cookie"] = cookies[who]
            response = await client.request(
                method, target, headers=headers, allow_redirects=False, **kw
            )
            await response.read()
            sent.append((who, method, target, response.status))
            return response

        alice, carol, bob, rita = PEOPLE
        for who, own in ((alice, (1, 3, 5)), (bob, (2, 4, 6)), (rita, (7, 9))):
            await call(who, "GET", "/api/invoices")
            for invoice in own:
                await call(who, "GET", f"/api/invoices/{invoice}")
                await call(who, "GET", f"/files/{invoice}")
                await call(who, "GET", f"/api/items/{invoice}")
                await call(who, "GET", f"/api/items/{invoice}.csv")
            await call(who, "GET", f"/api/search?invoice={own[0]}&invoice={own[1]}")
            await call(who, "GET", "/documents")
            await call(who, "GET", "/api/reports/recent")
            await call(who, "GET", "/api/items?limit=5")
        await call(alice, "HEAD", "/api/invoices/1")
        await call(alice, "PUT", "/api/invoices/3", json={"amount": 10, "related_invoice": 5})
        await call(alice, "PATCH", "/api/invoices/5", json={"status": "paid"})
        await call(bob, "PATCH", "/api/invoices/4", json={"status": "paid"})
        await call(alice, "PUT", "/api/items/1", json={"status": "open"})
        await call(bob, "PATCH", "/api/items/2", json={"status": "open"})
        await call(carol, "DELETE", "/api/invoices/11")
        await call(alice, "POST", "/api/invoices", json={"customer": "New", "amount": 5})
        await call(alice, "POST", "/api/items", json={"name": "x", "amount": 1})
        await call(carol, "POST", "/api/invoices/export")
        await call(alice, "GET", "/api/reports/r-acme-1")
        await call(bob, "GET", "/api/reports/r-globex-1")
        for who in (alice, bob):
            created = await call(who, "POST", "/api/reports", json={"title": "Q3"})
            location = created.headers.get("Location", "")
            if location:
                await call(who, "GET", "/" + location.split("/", 3)[3] if "//" in location
                           else location)  # fmt: skip
        await call(alice, "GET", "/t/acme/dashboard")
        await call("", "GET", "/static/app.css")
        # noise: foreign and missing objects, misses, a preflight
        await call(alice, "GET", "/api/invoices/2")
        await call(alice, "GET", "/api/invoices/999")
        await call(alice, "GET", "/wp-login.php")
        await call(alice, "OPTIONS", "/api/invoices/1")
    return sent


@pytest.fixture(scope="module")
def demo_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLogs]:
    """One run of demo traffic for the module's tests (Ledger keeps running for them)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    with ledger_process(tmp_path) as ledger:
        config = settings_file(
            tmp_path / "gatehold.yaml",
            ledger,
            port=free_port(),
            logging={"format": "json", "level": "info"},
        )
        settings = load_settings(config, env={}, cwd=tmp_path)
        asyncio.run(seed_users(settings))
        cookies = {}
        for person in PEOPLE:
            minted = gatehold("session", "mint", person, config=config)
            assert minted.returncode == 0, minted.stderr
            cookies[person] = minted.stdout.strip()
        port = int(yaml.safe_load(config.read_text())["server"]["port"])
        with (
            serving(config, tmp_path / "serve.log") as served,
            nginx_in_front(tmp_path / "nginx", port) as (front, combined),
        ):
            sent = asyncio.run(_demo_traffic(f"http://127.0.0.1:{front}", cookies))
        assert served.log.exists()
        yield DemoLogs(ledger, combined, served.log, sent)


def _shape(route: Route) -> tuple[tuple[str, str], ...]:
    template = parse_template(route.pattern)
    assert isinstance(template, Template)
    return template.shape


def _id_parameters(route: Route) -> set[tuple[str, str]]:
    """(source, what) of each id: a path id by its place, others by name or pointer."""
    template = parse_template(route.pattern)
    assert isinstance(template, Template)
    names = [name for name, _ in template.params]
    found = set()
    for spec in route.ids:
        if spec.source is IdSource.PATH:
            found.add(("path", f"parameter #{names.index(spec.key) + 1}"))
        else:
            found.add((str(spec.source), spec.key))
    return found


def compare(demo: RuleSet, draft: RuleSet) -> list[str]:
    """Every id-checked route and method of ``demo`` without the same in ``draft``.

    Templates are compared by shape (literals, parameter types and suffixes), path ids
    by their place in the path: the names are the draft's own (``/files/{file_id:int}``
    for the demo's ``/files/{doc_id:int}``), and so are resource type names (the demo's
    items are ``invoice`` objects; the draft names them ``item``). Query ids are
    compared by parameter name, body ids by pointer.
    """
    differences = []
    for route in demo.routes:
        if not route.ids:
            continue
        for method in sorted(route.methods or {"*"}):
            learned = [
                r for r in draft.routes
                if _shape(r) == _shape(route) and r.methods is not None and method in r.methods
            ]  # fmt: skip
            if not learned:
                differences.append(f"{route.name} {method} {route.pattern}: no learned route")
                continue
            want, got = _id_parameters(route), _id_parameters(learned[0])
            if want != got:
                differences.append(
                    f"{route.name} {method} {route.pattern}: ids {sorted(want)}, "
                    f"learned {learned[0].pattern} with {sorted(got)}"
                )
    return differences


ACCEPTED = {
    # Access logs carry no bodies: the related invoice in an update's JSON body is a
    # body_ids entry only a person (or an OpenAPI document) can add. The draft says so
    # in its header.
    "invoice-update PATCH /api/invoices/{invoice_id:int}: ids [('body', '/related_invoice'), "
    "('path', 'parameter #1')], learned /api/invoices/{invoice_id:int} with "
    "[('path', 'parameter #1')]",
    "invoice-update PUT /api/invoices/{invoice_id:int}: ids [('body', '/related_invoice'), "
    "('path', 'parameter #1')], learned /api/invoices/{invoice_id:int} with "
    "[('path', 'parameter #1')]",
}


def test_a_draft_from_the_demos_own_traffic_routes_every_id_checked_route(
    demo_logs: DemoLogs, tmp_path: Path
) -> None:
    served_ok = {s for (_, _, _, s) in demo_logs.statuses}
    assert 200 in served_ok and 404 in served_ok, demo_logs.statuses
    draft_file = tmp_path / "draft.yaml"
    result = gatehold(
        "rules", "learn",
        "--access-log", str(demo_logs.combined),
        "--access-log", str(demo_logs.json_log),
        "--upstream", f"ledger={demo_logs.ledger.url}",
        "--tenant", "acme", "--tenant", "globex",
        "--output", str(draft_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"not evidence: \d+ × 404 \(a miss\)", result.stderr), result.stderr
    assert "OPTIONS (preflights" in result.stderr
    text = draft_file.read_text()
    draft = load_rules_text(text, source=str(draft_file), env={})
    demo = load_rules(DEMO_RULES, env={"LEDGER_URL": demo_logs.ledger.url})

    differences = compare(demo, draft)
    assert set(differences) == ACCEPTED, "\n".join(differences)

    learned = {(r.pattern, m) for r in draft.routes for m in r.methods or ()}
    assert ("/api/search", "GET") in learned
    search = next(r for r in draft.routes if r.pattern == "/api/search")
    assert search.query is not None, "a search gets a query allow-list"
    assert ("/wp-login.php", "GET") not in learned, "a 404 is no evidence"
    assert not any(m == "OPTIONS" for _, m in learned)
    assert ("/api/invoices/{invoice_id:int}", "GET") in learned
    assert ("/api/invoices/{invoice_id:int}", "HEAD") not in learned, "GET covers HEAD"
    # The demo's tenant area (not id-checked, so not compared above) is learned as the
    # addresses seen, with the tenant named by the path as the demo names it.
    (area,) = [r for r in draft.routes if r.pattern.startswith("/t/")]
    assert (area.pattern, area.tenant_param) == ("/t/{tenant:slug}/dashboard", "tenant")

    # Gatehold's JSON access log alone writes no query strings (tokens travel there):
    # the search's query id is the one more difference, and the draft says why.
    json_only = gatehold(
        "rules", "learn", "--access-log", str(demo_logs.json_log),
        "--upstream", f"ledger={demo_logs.ledger.url}",
    )  # fmt: skip
    assert json_only.returncode == 0, json_only.stderr
    assert "JSON access log writes no query strings" in json_only.stdout
    from_json = load_rules_text(json_only.stdout, source="json-only", env={})
    assert set(compare(demo, from_json)) == ACCEPTED | {
        "invoice-search GET /api/search: ids [('query', 'invoice')], learned /api/search with []"
    }

    checked = gatehold("rules", "check", str(draft_file), process=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{draft_file}: valid")


async def test_a_gateway_serving_the_draft_refuses_the_unseen_and_every_unfilled_owner(
    demo_logs: DemoLogs, tmp_path: Path
) -> None:
    result = gatehold(
        "rules", "learn", "--access-log", str(demo_logs.combined),
        "--upstream", "ledger=${LEDGER_URL}",
    )  # fmt: skip
    assert result.returncode == 2 and "give NAME=URL" in result.stderr
    result = gatehold(
        "rules", "learn", "--access-log", str(demo_logs.combined),
        "--upstream", "ledger=http://127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout.replace("http://127.0.0.1:9", "${LEDGER_URL}")
    guessing = {"enumeration": {"window": "60s", "slow_after": 2, "block_after": 4}}
    async with running_stack(tmp_path / "stack", rules_text=text, policy=guessing) as stack:
        before = await stack.ledger_total()
        alice = stack.cookie("alice@acme.test") | {"Accept": "application/json"}
        cases = [
            ("GET", "/api/never-seen", 404, "route-not-found"),
            ("GET", "/internal/invoices/1", 404, "route-not-found"),
            ("DELETE", "/api/items/1", 405, "method-not-allowed"),
            ("GET", "/api/invoices/1", 503, "resolver-failed"),
            ("GET", "/files/1", 503, "resolver-failed"),
            ("GET", "/api/search?invoice=1", 503, "resolver-failed"),
        ]
        for method, target, status, reason in cases:
            response = await stack.client.request(method, target, headers=alice)
            assert response.status == status, (method, target, await response.text())
            body = await response.json()
            assert body["type"].endswith(reason), body
            rows = await stack.audit_rows(response.headers["X-Request-Id"])
            assert rows and rows[0]["decision"] == "deny", rows
            assert rows[0]["reason"] == reason
        assert await stack.ledger_total() == before, "nothing reached Ledger"
        for invoice in range(20, 25):  # an unfilled lookup is no id guessing: nobody is blocked
            response = await stack.client.get(f"/api/invoices/{invoice}", headers=alice)
            assert response.status == 503
        # What the draft allows without an object still works: the upstream is real.
        listed = await stack.client.get("/api/reports/recent", headers=alice)
        assert listed.status == 200
        assert await stack.ledger_total() == before + 1


def test_httpbins_swagger_document_gives_typed_parameters(httpbin: str, tmp_path: Path) -> None:  # noqa: F811
    draft_file = tmp_path / "httpbin.yaml"
    result = gatehold(
        "rules", "learn", "--openapi", f"{httpbin}/spec.json",
        "--upstream", f"httpbin={httpbin}", "--output", str(draft_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "httpbin.org" in result.stderr
    assert "TRACE /status/{codes}: not routed" in result.stderr
    draft = load_rules_text(draft_file.read_text(), source="httpbin.yaml", env={})
    routes = {(r.pattern, m) for r in draft.routes for m in r.methods or ()}
    for expected in [
        ("/status/{codes}", "GET"),  # the spec gives {codes} no type: "200,201" is one value
        ("/status/{codes}", "DELETE"),
        ("/bytes/{n:int}", "GET"),
        ("/delay/{delay:int}", "POST"),
        ("/links/{n:int}/{offset:int}", "GET"),
        ("/cache/{value:int}", "GET"),
        ("/base64/{value}", "GET"),
        ("/redirect-to", "GET"),
        ("/uuid", "GET"),
    ]:
        assert expected in routes, sorted(routes)
    assert not any(m in ("TRACE", "OPTIONS") for _, m in routes)
    by_path = {(r.pattern, sorted(r.methods or ())[0]): r for r in draft.routes}
    assert by_path[("/bytes/{n:int}", "GET")].ids[0].id_type == "int"
    assert by_path[("/base64/{value}", "GET")].ids[0].id_type == "regex:[^/]+"
    redirect = by_path[("/redirect-to", "GET")].query
    assert redirect is not None and set(redirect.allow or ()) == {"url", "status_code"}
    checked = gatehold("rules", "check", str(draft_file))
    assert checked.returncode == 0, checked.stderr
    with urllib.request.urlopen(f"{httpbin}/spec.json", timeout=10) as answer:  # noqa: S310
        spec = json.load(answer)
    assert spec["swagger"] == "2.0", "the document is httpbin's own, served by flasgger"
