"""``gatehold rules check`` and ``gatehold check``: lints, ``--strict`` and ``--probe``,
run as the real command against real files, databases and sockets."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.integration.test_cli import gatehold
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

UNCHECKED_WRITE = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  standard: {can: [read, write]}
routes:
  - name: create
    match: {path: "/api/invoices", methods: [POST]}
    upstream: app
"""


def rules_with_resolver(owner: str) -> str:
    return f"""\
version: 1
upstreams:
  app: {{url: "${{APP_URL:-http://127.0.0.1:9}}"}}
roles:
  standard: {{can: [read]}}
resources:
  document:
    id_type: int
    owner: {owner}
routes:
  - name: document
    match: {{path: "/docs/{{id:int}}", methods: [GET]}}
    upstream: app
    resource: {{type: document, id: path.id}}
"""


SQL_OWNER = '{sql: "SELECT tenant FROM documents WHERE id = :id", dsn: "sqlite:///app.db"}'
HTTP_OWNER = '{http: "GET {upstream}/owner/{id}", tenant_field: /tenant}'


def documents_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, tenant TEXT)")
    conn.close()


@pytest.fixture
def not_found_server() -> Iterator[str]:
    """An app answering 404 to everything: a resolver that works (no such object)."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_demo_rules_are_valid_with_no_warning_even_strict() -> None:
    result = gatehold("rules", "check", "--strict", str(DEMO_RULES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{DEMO_RULES}: valid"
    assert result.stderr == ""


def test_lints_are_warnings_by_default_and_errors_with_strict(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(UNCHECKED_WRITE)
    warned = gatehold("rules", "check", str(rules))
    assert warned.returncode == 0, warned.stderr
    assert f"warning: {rules}:7: route 'create' writes without an object or tenant check" in (
        warned.stderr
    )
    assert "[writes-unchecked]" in warned.stderr
    assert "valid with 1 warning" in warned.stdout

    strict = gatehold("rules", "check", "--strict", str(rules))
    assert strict.returncode == 1
    assert f"error: {rules}:7: route 'create' writes without" in strict.stderr
    assert "valid" not in strict.stdout


def test_errors_still_exit_2_before_any_lint(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(UNCHECKED_WRITE.replace("upstream: app", "upstream: ap"))
    result = gatehold("rules", "check", "--strict", str(rules))
    assert result.returncode == 2
    assert "unknown upstream 'ap'" in result.stderr
    assert "writes-unchecked" not in result.stderr


def test_gatehold_check_lints_the_settings_rules_and_honours_strict(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(UNCHECKED_WRITE)
    config = tmp_path / "gatehold.yaml"
    config.write_text(yaml.safe_dump({"data_dir": ".", "rules": "rules.yaml"}))
    warned = gatehold("check", config=config)
    assert warned.returncode == 0, warned.stderr
    assert "settings and rules are valid" in warned.stdout
    assert "with 1 warning" in warned.stdout
    assert f"warning: {rules}:7:" in warned.stderr
    strict = gatehold("check", "--strict", config=config)
    assert strict.returncode == 1
    assert f"error: {rules}:7:" in strict.stderr


def test_probe_reports_an_sql_resolver_whose_database_file_is_missing(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_with_resolver(SQL_OWNER))
    result = gatehold("rules", "check", "--probe", str(rules), cwd=tmp_path)
    assert result.returncode == 1
    assert f"resource 'document': sql sqlite:///{tmp_path / 'app.db'}" in result.stderr
    assert "no database file" in result.stderr
    assert not (tmp_path / "app.db").exists(), "the probe must not create the database"
    # without --probe the same rules are valid: nothing is opened
    assert gatehold("rules", "check", str(rules), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT tenant FROM missing_table WHERE id = :id", "no such table: missing_table"),
        ("SELEC tenant FROM documents WHERE id = :id", "syntax error"),
    ],
)
def test_probe_reports_bad_sql_and_missing_tables(
    tmp_path: Path, query: str, expected: str
) -> None:
    documents_db(tmp_path / "app.db")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        rules_with_resolver(SQL_OWNER.replace("SELECT tenant FROM documents WHERE id = :id", query))
    )
    result = gatehold("rules", "check", "--probe", str(rules), cwd=tmp_path)
    assert result.returncode == 1
    assert "error: probe: resource 'document'" in result.stderr
    assert expected in result.stderr


def test_probe_passes_a_working_sql_resolver_read_from_the_settings_folder(
    tmp_path: Path,
) -> None:
    settings_dir = tmp_path / "conf"
    settings_dir.mkdir()
    documents_db(settings_dir / "app.db")
    rules = settings_dir / "rules.yaml"
    rules.write_text(rules_with_resolver(SQL_OWNER))
    config = settings_dir / "gatehold.yaml"
    config.write_text(yaml.safe_dump({"data_dir": ".", "rules": "rules.yaml"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["rules", "check", "--probe", str(rules)], ["check", "--probe"]):
        result = gatehold(*args, config=config, cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert f"probe: resource 'document': sql sqlite:///{settings_dir / 'app.db'}: ok" in (
            result.stdout
        )
    assert not (elsewhere / "app.db").exists()


def test_probe_reports_an_http_resolver_on_a_closed_port(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_with_resolver(HTTP_OWNER))
    port = free_port()  # nothing listens there
    config = tmp_path / "gatehold.yaml"
    config.write_text(
        yaml.safe_dump(
            {"rules": "rules.yaml", "rules_env": {"APP_URL": f"http://127.0.0.1:{port}"}}
        )
    )
    result = gatehold(
        "rules", "check", "--probe", "--probe-timeout", "3", str(rules), config=config
    )
    assert result.returncode == 1
    assert f"GET http://127.0.0.1:{port}/owner/1: FAILED: cannot connect" in result.stderr


def test_probe_accepts_an_http_resolver_that_answers_not_found(
    tmp_path: Path, not_found_server: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_with_resolver(HTTP_OWNER))
    config = tmp_path / "gatehold.yaml"
    config.write_text(
        yaml.safe_dump({"rules": "rules.yaml", "rules_env": {"APP_URL": not_found_server}})
    )
    result = gatehold("check", "--probe", config=config)
    assert result.returncode == 0, result.stderr
    assert f"probe: resource 'document': GET {not_found_server}/owner/1: ok" in result.stdout
