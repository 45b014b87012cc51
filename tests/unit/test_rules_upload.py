"""The rules key ``upload``: compiled into ``UploadRules``, every mistake reported with
its line and what to write instead."""

from __future__ import annotations

from typing import get_args

import pytest

from gateway.config.loader import check_rules_text
from gateway.config.rules import UploadType
from gateway.filetypes import TYPES
from gateway.model import UploadRules

HEAD = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9001"}
roles:
  standard: {can: [read, write]}
routes:
"""


def compiled(route: str) -> UploadRules | None:
    ruleset, found = check_rules_text(HEAD + route, source="r.yaml", env={})
    assert found == [] and ruleset is not None
    return ruleset.routes[0].upload


def problems(route: str) -> list[str]:
    ruleset, found = check_rules_text(HEAD + route, source="r.yaml", env={})
    assert ruleset is None
    return [str(p) for p in found]


def test_the_block_compiles() -> None:
    upload = compiled(
        """\
  - name: files
    match: {path: /files, methods: [POST]}
    upstream: app
    max_body: 30MiB
    upload: {types: [pdf, png], max_file: 20MiB, max_parts: 3, max_part_header: 2KiB,
             filename: refuse, scan: {on_unavailable: allow}}
"""
    )
    assert upload == UploadRules(
        types=frozenset({"pdf", "png"}),
        max_file=20 * 1024**2,
        max_parts=3,
        max_part_header=2048,
        refuse_bad_names=True,
        scan=True,
        scan_unavailable_allow=True,
    )


def test_a_scan_fails_closed_unless_told_otherwise() -> None:
    upload = compiled(
        "  - {name: f, match: {path: /f}, upstream: app, upload: {types: [txt], scan: {}}}\n"
    )
    assert upload is not None and upload.scan and not upload.scan_unavailable_allow


def test_defaults() -> None:
    upload = compiled("  - {name: f, match: {path: /f}, upstream: app, upload: {types: [txt]}}\n")
    assert upload == UploadRules(types=frozenset({"txt"}))


MISTAKES = {
    "an unknown type": (
        "upload: {types: [exe]}",
        "r.yaml:10: routes[0].upload.types[0]: 'exe' is not allowed here — write one of",
    ),
    "no type at all": ("upload: {types: []}", "routes[0].upload.types"),
    "a file larger than the body": (
        "upload: {types: [pdf], max_file: 50MiB}",
        "50MiB is more than the route's max_body (10MiB) — raise max_body or lower max_file",
    ),
    "a part header limit out of range": (
        "upload: {types: [pdf], max_part_header: 1MiB}",
        "write between 256 and 64KiB",
    ),
    "an unreadable size": ("upload: {types: [pdf], max_file: lots}", "'lots' is not a size"),
    "an unknown filename mode": ("upload: {types: [pdf], filename: keep}", "filename"),
    "an upload on a WebSocket route": (
        "websocket: true\n    upload: {types: [pdf]}",
        "a WebSocket route carries no uploads",
    ),
    "no parts allowed": ("upload: {types: [pdf], max_parts: 0}", "max_parts"),
    "an unknown scan fallback": (
        "upload: {types: [pdf], scan: {on_unavailable: maybe}}",
        "routes[0].upload.scan.on_unavailable",
    ),
}


@pytest.mark.parametrize("case", MISTAKES, ids=list(MISTAKES))
def test_mistakes_are_reported_with_what_to_do(case: str) -> None:
    block, said = MISTAKES[case]
    route = f"  - name: f\n    match: {{path: /f}}\n    upstream: app\n    {block}\n"
    found = problems(route)
    assert any(said in line for line in found), found
    assert all(line.startswith("r.yaml:") for line in found)


def test_the_schema_lists_every_type_the_sniffer_knows() -> None:
    assert set(get_args(UploadType)) == set(TYPES)
