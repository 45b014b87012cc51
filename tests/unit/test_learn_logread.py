"""Access log lines: combined, common and Gatehold's JSON; bad lines counted, not raised."""

from __future__ import annotations

import json

from gateway.learn.logread import KEPT_PROBLEMS, read_log

COMBINED = (
    '10.0.0.1 - alice [29/Nov/2026:10:00:00 +0000] "GET /api/invoices/7?x=1 HTTP/1.1" 200 512 '
    '"https://app.example/" "Mozilla/5.0 (X11; \\"quoted\\")"'
)
COMMON = '10.0.0.1 - - [29/Nov/2026:10:00:00 +0000] "POST /api/invoices HTTP/1.0" 201 -'


def test_combined_line() -> None:
    requests, counts = read_log([COMBINED], source="access.log")
    (request,) = requests
    assert (request.method, request.target, request.status) == ("GET", "/api/invoices/7?x=1", 200)
    assert request.query_known and request.where == "access.log:1"
    assert not counts.problems and counts.requests == 1


def test_combined_line_with_fields_a_site_appends() -> None:
    requests, _ = read_log([COMBINED + " 0.004 127.0.0.1:9001"], source="a", format="combined")
    assert len(requests) == 1


def test_common_line_in_auto_and_common_formats() -> None:
    assert read_log([COMMON], source="a")[0][0].status == 201
    assert read_log([COMMON], source="a", format="common")[0][0].method == "POST"


def test_a_common_line_is_not_combined() -> None:
    requests, counts = read_log([COMMON], source="a", format="combined")
    assert not requests
    assert str(counts.problems[0]) == "a:1: not a combined log line"


def test_gatehold_json_access_line() -> None:
    line = json.dumps(
        {"logger": "gatehold.access", "message": "access", "method": "GET", "path": "/api/x/7",
         "status": 200, "decision": "allow", "route": "x-read"}
    )  # fmt: skip
    (request,) = read_log([line], source="serve.log")[0]
    assert request.target == "/api/x/7" and not request.query_known
    assert not request.refused_by_gateway


def test_gatehold_json_refusals_start_lines_and_parser_refusals() -> None:
    lines = [
        json.dumps({"logger": "gatehold.access", "method": "GET", "path": "/api/x/8",
                    "status": 404, "decision": "deny", "reason": "object-not-found"}),
        json.dumps({"logger": "gatehold", "message": "started", "pid": 1}),
        json.dumps({"logger": "gatehold.access", "method": "", "path": "", "status": 400}),
    ]  # fmt: skip
    requests, counts = read_log(lines, source="s", format="gatehold-json")
    assert [r.refused_by_gateway for r in requests] == [True]
    assert counts.other_lines == 2 and not counts.unreadable


def test_unreadable_lines_are_counted_with_their_numbers() -> None:
    lines = [
        COMBINED,
        "",
        "garbage",
        '1.2.3.4 - - [29/Nov/2026:10:00:00 +0000] "\\x16\\x03\\x01" 400 0 "-" "-"',
        "{not json",
        json.dumps({"logger": "gatehold.access", "method": "GET", "path": "x", "status": 200}),
        json.dumps([1, 2]),
        json.dumps({"logger": "gatehold.access", "method": "GET", "path": "/", "status": True}),
    ]
    requests, counts = read_log(lines, source="f")
    assert len(requests) == 1 and counts.blank == 1 and counts.unreadable == 6
    assert [str(p) for p in counts.problems] == [
        "f:3: not a combined or common log line",
        "f:4: no request line in '\\\\x16\\\\x03\\\\x01'",
        "f:5: not a JSON object",
        "f:6: an access line without a path",
        "f:7: not a combined or common log line",
        "f:8: an access line without a status",
    ]


def test_only_the_first_unreadable_lines_are_kept() -> None:
    _, counts = read_log(["x"] * 250, source="f")
    assert counts.unreadable == 250 and len(counts.problems) == KEPT_PROBLEMS
    assert str(counts.problems[-1]) == f"f:{KEPT_PROBLEMS}: not a combined or common log line"


def test_a_deeply_nested_json_line_is_unreadable() -> None:
    requests, counts = read_log(['{"a": ' * 100_000], source="f")
    assert not requests and str(counts.problems[0]) == "f:1: not a JSON object"
