"""CRLF and control characters aimed at the logs and the audit export.

Whatever a client sends that is written down — header values, the target, the query,
a form's address or return path — must not split a log line or an export row, carry a
raw terminal escape to whoever reads them, or run as a formula when the CSV export is
opened in a spreadsheet. Each case is sent byte for byte: control characters in a
header or the target are refused (400, audited, nothing forwarded); printable but
hostile values pass and are written down harmlessly. Then the CSV and JSON-lines
exports of everything are read back row by row, and the log formatters are given the
same values. One gateway serves the whole table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.logs import JsonLines, KeyValueText
from tests.support.admin_api import as_person
from tests.support.rawhttp import raw_request
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, ADMIN = "alice@acme.test", "admin@example.test"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3")

# (name, target, extra headers, expected status); the target is sent exactly as given.
CASES: list[tuple[str, str, dict[str, str], int]] = [
    ("ESC in User-Agent", "/api/invoices/7", {"User-Agent": "\x1b[31mred\x1b[0m"}, 400),
    ("DEL in User-Agent", "/api/invoices/7", {"User-Agent": "a\x7fb"}, 400),
    ("NUL in User-Agent", "/api/invoices/7", {"User-Agent": "a\x00b"}, 400),
    ("vertical tab in Referer", "/api/invoices/7", {"Referer": "a\x0bb"}, 400),
    ("bare CR in a header", "/api/invoices/7", {"X-Note": "a\rX-Injected: 1"}, 400),
    ("CRLF encoded in the path", "/api/invoices/7%0d%0aX-Injected:%201", {}, 400),
    ("ESC encoded in the path", "/api/%1b[31minvoices", {}, 400),
    ("NUL encoded in the path", "/api/invoices%00.json", {}, 400),
    ("CRLF encoded in the query", "/api/invoices?q=%0d%0aX-Injected:%201", {}, 403),
    ("ESC encoded in the query", "/api/invoices?q=%1b%5b31m", {}, 403),
    ("spaces and quotes in a client request id", "/api/invoices/7", {"X-Request-Id": 'a "b"'}, 200),
] + [
    (f"formula in User-Agent {i}", "/api/invoices/7", {"User-Agent": formula}, 200)
    for i, formula in enumerate(FORMULAS)
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("control")
    async with running_stack(data) as running:
        yield running


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
async def test_a_hostile_value_is_refused_or_passes_harmlessly(
    stack: Stack, case: tuple[str, str, dict[str, str], int]
) -> None:
    name, target, headers, status = case
    server = stack.client.server
    before = await stack.ledger_total()
    answer = await raw_request(
        str(server.host), int(server.port or 0), "GET", target, {**headers, **stack.cookie(ALICE)}
    )
    assert answer.status == status, (name, answer.status, answer.body[:200])
    assert b"\x1b" not in answer.body and b"X-Injected" not in answer.body
    request_id = answer.headers["x-request-id"]
    rows = await stack.audit_rows(request_id)
    assert rows, f"{name}: no audit record"
    if status >= 400:
        assert await stack.ledger_total() == before, f"{name}: forwarded"
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert not [r for r in rows if r["decision"] == "allow"], rows
    else:
        assert (await stack.ledger_hits()).get(request_id) == 1


async def test_the_exports_read_back_one_row_per_record_without_formulas(stack: Stack) -> None:
    admin = await as_person(stack, ADMIN)
    as_csv = await admin.get("/audit/export", params={"format": "csv"})
    as_jsonl = await admin.get("/audit/export", params={"format": "jsonl"})
    assert as_csv.status == as_jsonl.status == 200
    records = [json.loads(line) for line in as_jsonl.body.rstrip("\n").split("\n")]
    header, *rows = list(csv.reader(io.StringIO(as_csv.body)))
    assert len(rows) >= len(CASES)
    assert all(len(row) == len(header) for row in rows), "a value split a row"
    for seqs in ([int(row[0]) for row in rows], [record["seq"] for record in records]):
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a row split or went missing"
    for text in (as_csv.body, as_jsonl.body):
        controls = {c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0}
        assert controls == set(), f"raw control characters in an export: {controls!r}"
        assert "\nX-Injected" not in text
    for row in rows:
        for cell in row:
            assert not cell.startswith(TRIGGERS), f"a spreadsheet would run {cell!r}"
    for formula in FORMULAS:  # the values themselves are kept, escaped where they stand
        assert json.dumps(formula)[1:-1] in as_jsonl.body


@pytest.mark.parametrize("formatter", [JsonLines(), KeyValueText()], ids=["json", "text"])
async def test_a_log_line_stays_one_line_without_raw_escapes(
    formatter: logging.Formatter,
) -> None:
    hostile = ["a\r\nlevel=error forged", "\x1b[2J\x1b[31mred", "x\x00y", "tab\there", "é\x7f"]
    for value in hostile:
        record = logging.LogRecord("gatehold.access", logging.INFO, __file__, 0, "access", (), None)
        record.fields = {"path": value, "caller": value, "route": value}
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line, line
        assert not [c for c in line if ord(c) < 0x20 or ord(c) == 0x7F], repr(line)
