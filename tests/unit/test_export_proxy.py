"""``gatehold export``: the plan, the three configs, and what the real tools say of them.

nginx (``nginx -t``) and Caddy (``caddy validate``) check the exported files for real.
There is no Traefik binary here: its dynamic config is checked for shape (every router
names an existing service and middlewares, priorities keep Gatehold's order, the
forward-auth middleware copies every identity header).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from gateway.config.loader import load_rules
from gateway.export_caddy import caddy_config
from gateway.export_nginx import nginx_config
from gateway.export_plan import IDENTITY_HEADERS, ExportPlan, build_plan
from gateway.export_traefik import traefik_document
from gateway.forward_auth_fit import refusal
from gateway.model import MethodNotAllowed, NoRoute, RouteMatch, Target
from gateway.routing import Router
from tests.support.front_proxy import binary
from tests.support.stack import DEMO_RULES

ENV = {"LEDGER_URL": "http://127.0.0.1:9001", "LEDGER_DB_DSN": "sqlite:///ledger.db"}
RULESET = load_rules(DEMO_RULES, env=ENV)
PLAN = build_plan(RULESET, gatehold_url="http://127.0.0.1:8080", listen="127.0.0.1:8000")

FULL_PROXY = {
    "invoice-list": "guard",
    "invoice-update": "body_ids",
    "document-file": "file",
    "document-upload": "upload",
    "reports-recent": "guard",
    "items-list": "bind",
    "items-create": "body_tenant",
    "item-update": "body_tenant",
    "report-create": "learn_on_create",
    "live-feed": "websocket",
}
"""Demo routes that need the body or the answer, read off rules/demo.yaml by hand."""
POST_ONLY = {"invoice-create", "invoice-export", "tenant-area"}
"""Demo routes whose POSTs alone need the full proxy (a body may override the method)."""


def test_routes_needing_the_body_or_the_answer_go_to_the_full_proxy() -> None:
    full = {r.name: r for r in PLAN.routes if not r.forward_auth}
    assert set(full) == set(FULL_PROXY) | POST_ONLY
    for name, why in FULL_PROXY.items():
        assert any(need.startswith(why) for need in full[name].needs), (name, full[name])
    for name in POST_ONLY:
        assert full[name].methods == ("POST",), full[name]
    asked = {r.name for r in PLAN.forward_auth_routes}
    assert asked == {r.name for r in RULESET.routes} - set(FULL_PROXY) - {
        "invoice-create",
        "invoice-export",
    }


def test_each_method_goes_where_the_endpoint_would_take_it() -> None:
    """Every (route, method) the plan sends to the endpoint is one it decides, and every
    one it sends to the full proxy is one it refuses (``forward_auth_fit``)."""
    by_name = {r.name: r for r in RULESET.routes}
    for part in PLAN.routes:
        route = by_name[part.name]
        taken = {m for p in PLAN.routes if p.name == part.name and p.methods for m in p.methods}
        for method in part.methods or {"GET", "PUT", "PATCH", "DELETE", "POST"} - taken:
            refused = refusal(route, method, apps_read_method_override=True)
            assert (refused is None) == part.forward_auth, (part.name, method)


def test_the_plan_keeps_every_route_in_gatehold_s_matching_order() -> None:
    """For sample paths, the first plan route whose regex and methods fit is the route
    Gatehold's router picks: the front proxy's split never disagrees with the rules."""
    router = Router(RULESET.routes)
    samples = [
        "/api/invoices",
        "/api/invoices/export",
        "/api/invoices/7",
        "/api/items/3",
        "/api/items/3.csv",
        "/api/reports/recent",
        "/api/reports/r-acme-1",
        "/t/acme/notes/1",
        "/ws/acme/feed",
        "/files/2",
        "/files",
        "/static/ledger.css",
    ]
    for path in samples:
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            found = router.match(Target(path=path, query=""), method)
            first = next(
                (
                    r
                    for r in PLAN.routes
                    if re.fullmatch(r.path_regex, path)
                    and (r.methods is None or method in r.methods)
                ),
                None,
            )
            if isinstance(found, RouteMatch):
                assert first is not None and first.name == found.route.name, (method, path)
            else:
                assert isinstance(found, NoRoute | MethodNotAllowed)
                assert first is None, (method, path, first)


def test_nginx_asks_with_the_raw_target_and_forwards_it_raw() -> None:
    text = nginx_config(PLAN)
    assert "proxy_set_header X-Original-URI $request_uri;" in text
    assert not re.search(r"X-Original-URI \$uri", text)
    assert 'map "$request_method $request_uri" $gatehold_app' in text
    for line in re.findall(r"proxy_pass (\S+);", text):
        if line.startswith("http://$gatehold_app") or line == "http://gatehold":
            continue  # no URI part: nginx sends the client's raw target
        assert line == "http://gatehold/.gatehold/auth", line
    for header in IDENTITY_HEADERS:
        variable = "$gatehold_" + header.lower().replace("-", "_")
        assert f"proxy_set_header {header} {variable};" in text
        assert f"auth_request_set {variable} $upstream_http_" in text


def test_the_endpoint_is_internal_in_nginx_and_refused_by_caddy() -> None:
    assert re.search(r"location = /\.gatehold/auth \{\s+internal;", nginx_config(PLAN))
    assert "respond @gatehold_endpoint 404" in caddy_config(PLAN)


def test_caddy_copies_every_identity_header_and_drops_client_ones_first() -> None:
    text = caddy_config(PLAN)
    copies = re.findall(r"copy_headers (.+)", text)
    assert len(copies) == 2 * len(PLAN.forward_auth_routes)  # browsers, and the others
    renamed = ["X-Gatehold-Cookie>Cookie", "X-Gatehold-Authorization>Authorization"]
    assert all(line.split() == [*IDENTITY_HEADERS, *renamed] for line in copies)
    first_ask = text.index("forward_auth")
    for header in IDENTITY_HEADERS:
        assert text.index(f"request_header -{header}") < first_ask


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(cwd / "data"), "XDG_CONFIG_HOME": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_nginx_accepts_the_exported_config(tmp_path: Path) -> None:
    for sub in ("logs", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "nginx.conf").write_text(nginx_config(PLAN, standalone=True))
    done = _run([binary("nginx"), "-t", "-p", f"{tmp_path}/", "-c", "nginx.conf"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_caddy_accepts_the_exported_config(tmp_path: Path) -> None:
    (tmp_path / "Caddyfile").write_text(caddy_config(PLAN, standalone=True))
    command = [binary("caddy"), "validate", "--config", "Caddyfile", "--adapter", "caddyfile"]
    done = _run(command, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr


def test_the_traefik_config_has_a_consistent_shape() -> None:
    """No Traefik binary here: references, priorities and the auth middleware."""
    http = traefik_document(PLAN, entry_point="web")
    routers, middlewares, services = http["routers"], http["middlewares"], http["services"]
    priorities = []
    for name, router in routers.items():
        assert router["service"] in services, name
        assert set(router.get("middlewares", [])) <= set(middlewares), name
        assert router["entryPoints"] == ["web"]
        priorities.append(router["priority"])
        if router["rule"] != "PathPrefix(`/`)":
            regex = re.search(r"PathRegexp\(`(.+?)`\)", router["rule"])
            assert regex is not None, router["rule"]
            re.compile(regex.group(1))
    assert priorities == sorted(priorities, reverse=True), "most specific first"
    assert routers["gatehold-full-proxy"]["priority"] == 1
    ask = middlewares["gatehold-forward-auth"]["forwardAuth"]
    assert ask["address"] == "http://127.0.0.1:8080/.gatehold/auth"
    assert ask["authResponseHeaders"] == list(IDENTITY_HEADERS)
    assert ask["trustForwardHeader"] is False
    dropped = middlewares["gatehold-strip-identity"]["headers"]["customRequestHeaders"]
    assert all(dropped[h] == "" for h in IDENTITY_HEADERS)
    asked = [r for r in routers.values() if "middlewares" in r]
    assert len(asked) == len(PLAN.forward_auth_routes)
    assert all(
        r["middlewares"] == ["gatehold-strip-identity", "gatehold-forward-auth"] for r in asked
    )
    assert len(routers) == len(PLAN.routes) + 1


@pytest.mark.parametrize("proxy", ["nginx", "caddy", "traefik"])
def test_the_command_writes_the_config_and_names_the_full_proxy_routes(
    tmp_path: Path, proxy: str
) -> None:
    settings = tmp_path / "gatehold.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "data_dir": ".",
                "rules": str(DEMO_RULES),
                "server": {"port": 8080, "public_url": "http://127.0.0.1:8000"},
                "rules_env": ENV,
            }
        )
    )
    out = tmp_path / f"{proxy}.conf"
    result = CliRunner().invoke(main, ["export", proxy, "--config", str(settings), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{proxy}: forward-auth for 9 routes, Gatehold's full proxy for 13" in result.output
    for name in FULL_PROXY:
        assert f"  {name} (" in result.output
    assert "127.0.0.1:8080" in out.read_text()


def test_an_empty_rule_set_sends_everything_to_gatehold() -> None:
    empty = ExportPlan((), {}, "http://127.0.0.1:8080", "127.0.0.1:8000")
    assert 'default "";' in nginx_config(empty)
    assert "forward_auth" not in caddy_config(empty)
