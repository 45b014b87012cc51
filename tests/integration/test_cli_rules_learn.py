"""``gatehold rules learn`` as an operator runs it: options, files, errors, never a trace."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from pathlib import Path

from tests.support.cli import gatehold

LINE = '10.0.0.1 - - [29/Nov/2026:10:00:00 +0000] "{request} HTTP/1.1" {status} 12 "-" "ua"'


def write_log(path: Path, *requests: str, status: int = 200, garbage: int = 0) -> Path:
    lines = [LINE.format(request=r, status=status) for r in requests]
    lines += [f"garbage line {n}" for n in range(garbage)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_writes_a_draft_that_rules_check_accepts(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log", "GET /api/invoices/7", "GET /api/invoices/8",
                    "GET /api/search?invoice=7", "POST /api/invoices", garbage=7)  # fmt: skip
    out = tmp_path / "draft.yaml"
    result = gatehold("rules", "learn", "--access-log", str(log), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "read 4 requests from 1 log; 7 unreadable lines"
    assert lines[1].endswith("access.log:5: not a combined or common log line")
    assert "  … and 2 more" in lines
    assert "writes-unchecked" in result.stderr
    assert f"wrote {out}: a draft to review (3 routes, 1 owner lookups to fill in)" in lines[-1]
    checked = gatehold("rules", "check", str(out))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"{out}: valid with 1 warning"
    strict = gatehold("rules", "check", "--strict", str(out))
    assert strict.returncode == 1, "the write without ids is a warning to act on"
    probe = gatehold("rules", "check", "--probe", "--probe-timeout", "5", str(out))
    assert probe.returncode == 1, "an unfilled owner lookup fails its probe"
    assert "QUESTION-owner-of-invoice.invalid" in probe.stderr


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log", "GET /a/7")
    out = tmp_path / "rules.yaml"
    out.write_text("mine\n")
    refused = gatehold("rules", "learn", "--access-log", str(log), "--output", str(out))
    assert refused.returncode == 2
    assert refused.stderr == f"error: {out} exists: give --force to overwrite it\n"
    assert out.read_text() == "mine\n"
    forced = gatehold("rules", "learn", "--access-log", str(log), "--output", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_text().startswith("# yaml-language-server")


def test_prints_the_draft_without_output(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log", "GET /a/7")
    result = gatehold("rules", "learn", "--access-log", str(log), "--upstream", "app=http://x:1")
    assert result.returncode == 0, result.stderr
    assert '  app: {url: "http://x:1"}' in result.stdout


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    cases = [
        ((), "nothing to learn from: give --access-log FILE and/or --openapi FILE_OR_URL"),
        (("--access-log", str(tmp_path / "missing.log")), "missing.log: cannot read"),
        (("--openapi", str(tmp_path / "missing.json")), "missing.json: cannot read"),
        (("--openapi", "http://127.0.0.1:9/spec.json"), "cannot fetch"),
        (
            ("--access-log", str(write_log(tmp_path / "miss.log", "GET /x", status=404))),
            "nothing to learn: no request in the input counts as evidence",
        ),
        (
            ("--access-log", str(write_log(tmp_path / "junk.log", garbage=3))),
            "no request could be read from the logs (is --format right?)",
        ),
        (
            ("--access-log", str(write_log(tmp_path / "a.log", "GET /a")), "--upstream", "x"),
            "--upstream 'x': give NAME=URL",
        ),
    ]
    (tmp_path / "doc.json").write_text(json.dumps({"openapi": "3.0.0"}))
    cases.append((("--openapi", str(tmp_path / "doc.json")), "the document has no 'paths'"))
    (tmp_path / "bin.log").write_bytes(b"\xff\xfe\x00garbage\n" * 3)
    cases.append((("--access-log", str(tmp_path / "bin.log")), "no request could be read"))
    for args, message in cases:
        result = gatehold("rules", "learn", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


def test_format_and_min_requests(tmp_path: Path) -> None:
    json_log = tmp_path / "serve.log"
    json_log.write_text(
        "\n".join(
            json.dumps(
                {
                    "logger": "gatehold.access",
                    "method": "GET",
                    "path": path,
                    "status": 200,
                    "decision": "allow",
                }
            )
            for path in ("/a/7", "/a/8", "/b")
        )  # fmt: skip
    )
    as_combined = gatehold("rules", "learn", "--access-log", str(json_log), "--format", "combined")
    assert as_combined.returncode == 2
    assert "serve.log:1: not a combined log line" in as_combined.stderr
    learned = gatehold(
        "rules", "learn", "--access-log", str(json_log), "--format", "gatehold-json",
        "--min-requests", "2",
    )  # fmt: skip
    assert learned.returncode == 0, learned.stderr
    assert '"/a/{a_id:int}"' in learned.stdout and '"/b"' not in learned.stdout
    assert "fewer than --min-requests: GET /b (1 requests)" in learned.stderr


def test_an_openapi_document_and_a_log_together(tmp_path: Path) -> None:
    doc = tmp_path / "api.yaml"
    doc.write_text(
        """
openapi: 3.0.0
info: {title: Ledger, version: "1"}
paths:
  /api/invoices/{id}:
    parameters: [{name: id, in: path, schema: {type: integer}}]
    patch:
      requestBody:
        content:
          application/json:
            schema: {properties: {related_invoice_id: {type: integer}}}
"""
    )
    log = write_log(tmp_path / "access.log", "GET /api/invoices/7")
    result = gatehold("rules", "learn", "--openapi", str(doc), "--access-log", str(log))
    assert result.returncode == 0, result.stderr
    assert 'body_ids: [{type: related_invoice, pointer: "/related_invoice_id"}]' in result.stdout
    assert '"/api/invoices/{id:int}", methods: [GET]' in result.stdout, "one template"
    assert "  # seen 1 time: 200×1" in result.stdout


def test_rotated_gzip_logs_are_read_and_a_broken_one_is_reported(tmp_path: Path) -> None:
    plain = write_log(tmp_path / "access.log", "GET /a/7", "GET /a/8")
    rotated = tmp_path / "access.log.1.gz"
    rotated.write_bytes(gzip.compress(plain.read_bytes().replace(b"/a/", b"/b/")))
    result = gatehold("rules", "learn", "--access-log", str(plain), "--access-log", str(rotated))
    assert result.returncode == 0, result.stderr
    assert '"/a/{a_id:int}"' in result.stdout and '"/b/{b_id:int}"' in result.stdout
    assert result.stderr.startswith("read 4 requests from 2 logs")
    broken = tmp_path / "access.log.2.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes() * 50)[:60])
    failed = gatehold("rules", "learn", "--access-log", str(broken))
    assert failed.returncode == 2
    assert f"error: {broken}: reading stopped:" in failed.stderr
    assert "Traceback" not in failed.stderr
    not_gzip = tmp_path / "access.log.3.gz"
    not_gzip.write_text("plain text\n")
    refused = gatehold("rules", "learn", "--access-log", str(not_gzip))
    assert refused.returncode == 2 and f"{not_gzip}: cannot read" in refused.stderr


def test_tenant_ids(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log", "GET /t/acme/home", "GET /t/globex/home")
    learned = gatehold("rules", "learn", "--access-log", str(log), "--tenant", "acme",
                       "--tenant", "globex")  # fmt: skip
    assert learned.returncode == 0, learned.stderr
    assert "    tenant: path.tenant" in learned.stdout
    bad = gatehold("rules", "learn", "--access-log", str(log), "--tenant", "Acme Corp")
    assert bad.returncode == 2
    assert "--tenant 'Acme Corp': a tenant id is lower-case letters, digits and '-'" in bad.stderr


def test_a_document_url_that_answers_garbage_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        result = gatehold("rules", "learn", "--openapi", f"http://127.0.0.1:{port}/spec.json")
        thread.join(10)
    assert result.returncode == 2, result.stderr
    assert f"http://127.0.0.1:{port}/spec.json: cannot fetch" in result.stderr
    assert "Traceback" not in result.stderr
