"""A file is checked alike whatever part of it is asked for, and every answer on a file
route carries the gateway's safe headers whatever the app sent (SPEC §7, I3).

The attacks:

* Ask for a foreign file by HEAD, by a byte range (one byte, a suffix, several ranges,
  ``If-Range``, two ``Range`` headers, odd spellings) or conditionally, hoping one of
  them skips the object check or answers differently from the whole file, so that its
  existence or a part of it leaks. Each is sent as the class, every method with every
  spelling, to the demo rules in front of a real Ledger: the same 404 as the whole
  file and as a missing one, nothing reaches Ledger, a ``deny`` audit row.
* An app that sends its own weaker headers on a download (a public cache, a permissive
  policy, ``nosniff`` off, a path and a bidi override in the file name, each twice): the
  answer must carry the gateway's values, once each, on every status a file route gives
  (200, 206, 304, 412, 416, HEAD). The app is a real file server (aiohttp's
  ``FileResponse``), asked the same thing directly to know what it answers; through the
  gateway the status and bytes must be the same, only the headers safer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.downloads import FILE_ANSWER_HEADERS
from tests.support.rawhttp import RawResponse, raw_request
from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

ALICE = "alice@acme.test"
FOREIGN, MISSING, OWN = "/files/2", "/files/999", "/files/1"
"""On the demo rules: a globex document, no document, an acme document."""

ETAG = "{etag}"
"""Stands for the file's current ETag, asked of the file server before the test."""
PAST, FUTURE = "Mon, 01 Jan 2001 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT"

SPELLINGS: dict[str, dict[str, str]] = {
    "the whole file": {},
    "its first byte": {"Range": "bytes=0-0"},
    "its last byte": {"Range": "bytes=-1"},
    "all from byte 3": {"Range": "bytes=3-"},
    "several ranges": {"Range": "bytes=0-0,2-3,5-"},
    "overlapping ranges": {"Range": "bytes=0-5,1-2,0-0"},
    "an upper-case unit": {"Range": "BYTES=0-0"},
    "spaces in the range": {"Range": "bytes = 0 - 0"},
    "a range past the end": {"Range": "bytes=100000-"},
    "a malformed range": {"Range": "bytes=z-"},
    "another unit": {"Range": "items=0-0"},
    "two Range headers": {"Range": "bytes=0-0", "range": "bytes=1-1"},
    "a range under a current If-Range date": {"Range": "bytes=0-0", "If-Range": FUTURE},
    "a range under a stale If-Range date": {"Range": "bytes=0-0", "If-Range": PAST},
    "a range under an If-Range ETag": {"Range": "bytes=0-0", "If-Range": ETAG},
    "a matching If-None-Match": {"If-None-Match": ETAG},
    "If-None-Match any": {"If-None-Match": "*"},
    "a recent If-Modified-Since": {"If-Modified-Since": FUTURE},
    "a failing If-Match": {"If-Match": '"another"'},
    "a failing If-Unmodified-Since": {"If-Unmodified-Since": PAST},
}
METHODS = ("GET", "HEAD")
CASES = [(method, name) for method in METHODS for name in SPELLINGS]
IDS = [f"{method} for {name}" for method, name in CASES]


def with_etag(spelling: str, etag: str) -> dict[str, str]:
    """The headers of ``spelling``, with ``etag`` for the file's ETag."""
    return {k: v.replace(ETAG, etag) for k, v in SPELLINGS[spelling].items()}


ACCEPTS = ("application/json", "text/html")
ALIKE = ("content-type", "content-length", "cache-control", "x-content-type-options")


async def send(
    port: int, method: str, target: str, headers: dict[str, str], *, accept: str = ""
) -> RawResponse:
    sent = {"Accept": accept or "application/json", **headers}
    return await raw_request("127.0.0.1", port, method, target, sent)


def gateway_port(stack: Stack) -> int:
    port = stack.client.server.port
    assert port is not None
    return port


async def request_row(stack: Stack, response: RawResponse) -> dict[str, Any]:
    """The one ``request`` audit row of an answered request, ``data`` decoded."""
    rows = await stack.audit_rows(response.headers["x-request-id"])
    requests = [r for r in rows if r["kind"] == "request"]
    assert len(requests) == 1, rows
    row = requests[0]
    row["data"] = json.loads(row["data"])
    return row


def without_id(response: RawResponse) -> bytes:
    return response.body.replace(response.headers["x-request-id"].encode(), b"")


@pytest.mark.parametrize(("method", "spelling"), CASES, ids=IDS)
async def test_a_foreign_file_is_the_same_404_for_any_method_and_range(
    tmp_path: Path, method: str, spelling: str
) -> None:
    headers = with_etag(spelling, '"0-0"')
    async with running_stack(tmp_path) as stack:
        port = gateway_port(stack)
        for accept in ACCEPTS:
            whole = await send(port, "GET", FOREIGN, stack.cookie(ALICE), accept=accept)
            foreign = await send(
                port, method, FOREIGN, headers | stack.cookie(ALICE), accept=accept
            )
            missing = await send(
                port, method, MISSING, headers | stack.cookie(ALICE), accept=accept
            )
            assert whole.status == foreign.status == missing.status == 404
            expected = without_id(whole) if method == "GET" else b""
            assert without_id(foreign) == without_id(missing) == expected
            for name in ALIKE:
                assert foreign.headers.get(name) == whole.headers.get(name), name
                assert missing.headers.get(name) == whole.headers.get(name), name
            hits = await stack.ledger_hits()
            for answer in (foreign, missing):
                assert hits.get(answer.headers["x-request-id"], 0) == 0, "Ledger was reached"
            foreign_row = await request_row(stack, foreign)
            missing_row = await request_row(stack, missing)
            assert (foreign_row["decision"], foreign_row["reason"]) == ("deny", "tenant-foreign")
            assert (missing_row["decision"], missing_row["reason"]) == ("deny", "object-not-found")
            assert foreign_row["method"] == missing_row["method"] == method
            assert foreign_row["data"]["action"] == "download"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_answer_a_foreign_file_like_a_missing_one(
    tmp_path: Path, method: str
) -> None:
    async with running_stack(tmp_path) as stack:
        port = gateway_port(stack)
        ranged = {"Range": "bytes=0-0"} | stack.cookie(ALICE)
        foreign = await send(port, method, FOREIGN, ranged)
        missing = await send(port, method, MISSING, ranged)
        own = await send(port, method, OWN, ranged)
        assert foreign.status == missing.status == own.status == 405
        assert without_id(foreign) == without_id(missing) == without_id(own)
        assert await stack.ledger_total() == 0


# The file server behind a file route, sending every header the gateway must override.
RULES = """
version: 1
upstreams:
  files: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
resources:
  doc:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
routes:
  - name: doc-file
    match: {{path: "/docs/{{doc_id:int}}", methods: [GET]}}
    upstream: files
    resource: {{type: doc, id: path.doc_id}}
    file: {{disposition: attachment}}
  - name: report-file
    match: {{path: "/reports/{{name}}", methods: [GET]}}
    upstream: files
    file: {{disposition: inline}}
"""
CONTENT = b"<html><script>fetch('/api/invoices').then(r => r.text())</script></html>\n"
WEAK = (
    ("Content-Disposition", "inline; filename*=UTF-8''..%2F..%2Fevil%E2%80%AElmth.html"),
    ("Content-Disposition", 'inline; filename="second.html"'),
    ("Cache-Control", "public, max-age=31536000"),
    ("Cache-Control", "immutable"),
    ("Content-Security-Policy", "default-src *"),
    ("Content-Security-Policy", "script-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "sniff"),
    ("X-Content-Type-Options", "sniff"),
)
DISPOSITION = "attachment; filename=\"evillmth.html\"; filename*=UTF-8''evillmth.html"
SAFE = (("content-disposition", DISPOSITION), *((k.lower(), v) for k, v in FILE_ANSWER_HEADERS))
KEPT = ("content-type", "content-range", "etag", "last-modified", "content-length")


@asynccontextmanager
async def file_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    document = tmp_path / "page.html"
    document.write_bytes(CONTENT)
    answer = Answer(file=document, content_type="text/html", added=WEAK)
    owners = {"1": "acme", "2": "globex"}
    async with (
        scripted_upstream("files", owners=owners, answers={"/docs/1": answer}) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


async def direct(app: Scripted, method: str, headers: dict[str, str]) -> RawResponse:
    """What the file server itself answers, asked without the gateway."""
    port = urlsplit(app.url).port
    assert port is not None
    return await send(port, method, "/docs/1", headers)


@pytest.mark.parametrize(("method", "spelling"), CASES, ids=IDS)
async def test_every_answer_on_ones_own_file_carries_the_safe_headers_once(
    tmp_path: Path, method: str, spelling: str
) -> None:
    async with file_stack(tmp_path) as (stack, app):
        headers = with_etag(spelling, (await direct(app, "HEAD", {})).headers["etag"])
        itself = await direct(app, method, headers)
        answer = await send(gateway_port(stack), method, "/docs/1", headers | stack.cookie(ALICE))
        row = await request_row(stack, answer)
        rows = await stack.audit_rows(answer.headers["x-request-id"])
    assert answer.status == itself.status, answer.body
    assert answer.body == itself.body, "the same bytes as the file server sent"
    for name, value in SAFE:
        assert answer.all(name) == [value], name
    for name in KEPT:
        assert answer.headers.get(name) == itself.headers.get(name), name
    assert app.hit_count(answer.headers["x-request-id"]) == 1
    assert (row["decision"], row["method"]) == ("allow", method)
    assert f'"status":{answer.status}' in rows[-1]["data"].replace(" ", "")


async def test_the_spellings_reach_every_status_a_file_route_gives(tmp_path: Path) -> None:
    """The cases above are worth their names: the file server answers them with every
    status a download can have."""
    async with file_stack(tmp_path) as (_, app):
        etag = (await direct(app, "HEAD", {})).headers["etag"]
        statuses = {(await direct(app, m, with_etag(s, etag))).status for m, s in CASES}
    assert statuses == {200, 206, 304, 412, 416}


async def test_a_foreign_file_on_the_file_server_is_never_asked_for(tmp_path: Path) -> None:
    async with file_stack(tmp_path) as (stack, app):
        port = gateway_port(stack)
        for method, spelling in CASES:
            headers = with_etag(spelling, '"0-0"') | stack.cookie(ALICE)
            answer = await send(port, method, "/docs/2", headers)
            assert answer.status == 404, (method, spelling)
            assert app.hit_count(answer.headers["x-request-id"]) == 0
            row = await request_row(stack, answer)
            assert (row["decision"], row["reason"]) == ("deny", "tenant-foreign")


# Ledger's own documents: names with a path and a stray quote, as a careless app sends them.
DEMO_DOCUMENTS = {
    "a plain name": ("alice@acme.test", "/files/1", "contract.pdf"),
    "a name with directories": ("alice@acme.test", "/files/3", "passwd"),
    "a name with a quote that ends the quoted string": (
        "bob@globex.test",
        "/files/4",
        "report_2025.txt",
    ),
}


@pytest.mark.parametrize(
    ("who", "path", "name"), DEMO_DOCUMENTS.values(), ids=DEMO_DOCUMENTS.keys()
)
async def test_the_demo_documents_are_offered_under_their_sanitized_names(
    tmp_path: Path, who: str, path: str, name: str
) -> None:
    async with running_stack(tmp_path) as stack:
        answer = await send(gateway_port(stack), "GET", path, stack.cookie(who))
    assert answer.status == 200
    assert answer.all("content-disposition") == [
        f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    ]
    for header, value in FILE_ANSWER_HEADERS:
        assert answer.all(header) == [value], header
    assert answer.headers["content-type"].startswith("text/plain")


async def test_a_file_the_app_does_not_name_is_named_by_its_decoded_path(tmp_path: Path) -> None:
    async with file_stack(tmp_path) as (stack, _):
        target = "/reports/r%C3%A9sum%C3%A9%20%E2%80%AEv2.pdf"
        answer = await send(gateway_port(stack), "GET", target, stack.cookie(ALICE))
    assert answer.status == 200
    assert answer.all("content-disposition") == [
        "inline; filename=\"resume v2.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20v2.pdf"
    ]
