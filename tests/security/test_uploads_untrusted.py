"""Uploads are untrusted (SPEC §7): checked by content, size and name before the app.

The attacks, each sent as the whole class to a real gateway in front of a real
(scripted) app that records what reached it:

* A file whose name and declared type say one thing and whose bytes another: HTML as
  a PDF, an SVG with script, executables renamed ``.png``/``.pdf``, a polyglot, a ZIP
  posing as a Word document; as a form and as a raw PUT body. Refused with 415 and a
  message saying what the content is; the app never received the request; the audit
  row is a ``deny`` with the reason and the file's name as sent.
* A file name that is a path, carries a bidi override, a device name or 300 bytes:
  the app receives the sanitized name in a well-formed form with the right length;
  on a route with ``filename: refuse`` the upload is refused and nothing is forwarded.
* A body over the route's limit, streamed: answered 413 before the client finished
  sending, and the app got nothing at all. Too many parts, a huge part header, one
  file over ``max_file``: refused the same way.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import multipart as push_multipart
import pytest

from gateway.admin.explain import explain, principal_for
from gateway.context import GATEWAY
from gateway.model import Reason
from tests.support import upload_samples as s
from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack
from tests.support.trickle import trickle

ALICE = "alice@acme.test"
RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
routes:
  - name: files
    match: {{path: "/api/files", methods: [POST, PUT]}}
    upstream: app
    max_body: 1MiB
    upload: {{types: [pdf, png, txt, csv, docx], max_file: 512KiB, max_parts: 4,
              max_part_header: 1KiB}}
  - name: archive
    match: {{path: "/api/archive", methods: [PUT]}}
    upstream: app
    max_body: 256KiB
    upload: {{types: [txt], max_file: 256KiB}}
  - name: avatars
    match: {{path: "/api/avatars", methods: [POST]}}
    upstream: app
    upload: {{types: [png], filename: refuse}}
"""


@asynccontextmanager
async def upload_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app") as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


async def post(
    stack: Stack, body: bytes, content_type: str, *, path: str = "/api/files", method: str = "POST"
) -> tuple[int, dict[str, Any], str]:
    """Send an upload as Alice; (status, problem or {}, request id)."""
    headers = {"Content-Type": content_type, "Accept": "application/json"} | stack.cookie(ALICE)
    response = await stack.client.request(method, path, data=body, headers=headers)
    text = await response.text()
    problem = json.loads(text) if response.status >= 400 else {}
    return response.status, problem, response.headers["X-Request-Id"]


async def request_row(stack: Stack, request_id: str) -> dict[str, Any]:
    (row,) = [r for r in await stack.audit_rows(request_id) if r["kind"] == "request"]
    row["data"] = json.loads(row["data"])
    return row


async def assert_refused_unseen(
    stack: Stack, app: Scripted, request_id: str, reason: str
) -> dict[str, Any]:
    """Nothing reached the app; the request's audit row is a deny with ``reason``."""
    assert app.hit_count(request_id) == 0
    assert app.total_hits == 0
    row = await request_row(stack, request_id)
    assert (row["decision"], row["reason"]) == ("deny", reason)
    return row


def app_form(app: Scripted, request_id: str) -> list[tuple[str, str | None, bytes]]:
    """The form the app received, read by an independent parser: (field, name, bytes)."""
    headers = app.request_headers[request_id]
    boundary = headers["content-type"].split("boundary=", 1)[1]
    body = app.bodies[request_id]
    assert int(headers["content-length"]) == len(body)
    parser = push_multipart.MultipartParser(io.BytesIO(body), boundary, strict=True)
    parts = []
    for part in parser:
        parts.append((part.name, part.filename, part.raw))
        part.close()
    return parts


DISGUISES = {
    "HTML as a .pdf declared application/pdf": (
        "invoice.pdf", "application/pdf", s.HTML, "an HTML page"),
    "an SVG with script declared image/svg+xml": (
        "logo.svg", "image/svg+xml", s.SVG_SCRIPT, "an SVG image"),
    "an SVG with script renamed .png": ("logo.png", "image/png", s.SVG_SCRIPT, "an SVG image"),
    "an ELF executable renamed .png": ("cat.png", "image/png", s.elf(), "Linux executable"),
    "a PE executable renamed .pdf": ("cv.pdf", "application/pdf", s.pe(), "Windows executable"),
    "a polyglot with PDF magic after an HTML prefix": (
        "doc.pdf", "application/pdf", b"<html><script>x</script>" + s.pdf(), "an HTML page"),
    "a plain ZIP posing as a Word document": (
        "letter.docx", "application/octet-stream", s.plain_zip(), "a ZIP archive"),
    "a PNG named .php": ("shell.php", "image/png", s.png(), "named '.php'"),
}  # fmt: skip
RAW_DISGUISES = [case for case in DISGUISES if "named" not in case]
"""A raw body has no file name: every disguise but the one told by a name alone."""


class TestDisguisedFilesNeverReachTheApp:
    @pytest.mark.parametrize("case", DISGUISES, ids=list(DISGUISES))
    async def test_as_a_form(self, tmp_path: Path, case: str) -> None:
        name, declared, data, said = DISGUISES[case]
        async with upload_stack(tmp_path) as (stack, app):
            status, problem, rid = await post(stack, *s.one_file(name, declared, data))
            assert status == 415
            assert problem["type"].endswith("/file-type-refused")
            assert said in problem["detail"]
            row = await assert_refused_unseen(stack, app, rid, "file-type-refused")
            (seen,) = row["data"]["upload"]["files"]
            assert seen["original_name"] == name and seen["declared"] == declared
            assert said in row["data"]["upload"]["refused"]

    @pytest.mark.parametrize("case", RAW_DISGUISES, ids=list(RAW_DISGUISES))
    async def test_as_a_raw_put_body(self, tmp_path: Path, case: str) -> None:
        _, declared, data, _ = DISGUISES[case]
        async with upload_stack(tmp_path) as (stack, app):
            status, problem, rid = await post(stack, data, declared, method="PUT")
            assert status == 415 and problem["type"].endswith("/file-type-refused")
            await assert_refused_unseen(stack, app, rid, "file-type-refused")


class TestGenuineFilesReachTheAppAsSent:
    async def test_a_form_with_files_and_fields(self, tmp_path: Path) -> None:
        body, content_type = s.form(
            ("title", None, None, b"Q3 report"),
            ("report", "q3.pdf", "application/pdf", s.pdf()),
            ("letter", "cover.docx", "application/octet-stream", s.docx()),
            ("rows", "rows.csv", "text/csv", s.CSV),
        )
        async with upload_stack(tmp_path) as (stack, app):
            status, _, rid = await post(stack, body, content_type)
            assert status == 200
            assert app_form(app, rid) == [
                ("title", None, b"Q3 report"),
                ("report", "q3.pdf", s.pdf()),
                ("letter", "cover.docx", s.docx()),
                ("rows", "rows.csv", s.CSV),
            ]
            row = await request_row(stack, rid)
            assert row["decision"] == "allow"
            kinds = [f["type"] for f in row["data"]["upload"]["files"]]
            assert kinds == ["pdf", "docx", "csv"]

    async def test_a_raw_put_body_is_forwarded_byte_for_byte(self, tmp_path: Path) -> None:
        async with upload_stack(tmp_path) as (stack, app):
            status, _, rid = await post(stack, s.png(), "image/png", method="PUT")
            assert status == 200 and app.bodies[rid] == s.png()


BAD_NAMES = {
    "a path with slashes": ("../../etc/cron.d/x.png", "x.png"),
    "a path with backslashes": ("..\\..\\Windows\\x.png", "x.png"),
    "a right-to-left override": ("invoice\u202egnp.exe.png", "invoicegnp.exe.png"),
    "a Windows device name": ("CON.png", "_CON.png"),
    "a 300-byte name": ("a" * 296 + ".png", "a" * 196 + ".png"),
    "an empty name": ("", "upload"),
}


class TestFileNames:
    @pytest.mark.parametrize("case", BAD_NAMES, ids=list(BAD_NAMES))
    async def test_the_app_receives_the_sanitized_name(self, tmp_path: Path, case: str) -> None:
        original, sanitized = BAD_NAMES[case]
        async with upload_stack(tmp_path) as (stack, app):
            status, _, rid = await post(stack, *s.one_file(original, "image/png", s.png()))
            assert status == 200
            assert app_form(app, rid) == [("file", sanitized, s.png())]
            (seen,) = (await request_row(stack, rid))["data"]["upload"]["files"]
            assert seen["name"] == sanitized
            escaped = {"\u202e": "\\u202e", "\\": "\\u005c"}
            assert seen["original_name"] == "".join(escaped.get(c, c) for c in original)

    @pytest.mark.parametrize("case", BAD_NAMES, ids=list(BAD_NAMES))
    async def test_a_route_that_refuses_them(self, tmp_path: Path, case: str) -> None:
        original, _ = BAD_NAMES[case]
        body, content_type = s.one_file(original, "image/png", s.png())
        async with upload_stack(tmp_path) as (stack, app):
            status, problem, rid = await post(stack, body, content_type, path="/api/avatars")
            assert status == 400 and problem["type"].endswith("/file-name-refused")
            assert "rename" in problem["detail"] and "\u202e" not in problem["detail"]
            await assert_refused_unseen(stack, app, rid, "file-name-refused")


class TestLimits:
    async def test_a_body_over_the_limit_is_stopped_while_it_streams(self, tmp_path: Path) -> None:
        async with upload_stack(tmp_path) as (stack, app):
            port = stack.client.server.port
            assert port is not None
            headers = {"Content-Type": "text/plain"} | stack.cookie(ALICE)
            sent = await trickle(
                "127.0.0.1",
                port,
                "/api/archive",
                headers,
                method="PUT",
                first=b"a" * 65536,
                piece=b"a" * 65536,
                every=0.02,
                pieces=30,
            )
            assert sent.response is not None and sent.response.status == 413
            assert sent.sent < 31 * 65536  # answered before the client was done
            assert app.total_hits == 0 and app.bodies == {}
            rid = sent.response.headers["x-request-id"]
            await assert_refused_unseen(stack, app, rid, "body-too-large")

    async def test_a_file_over_max_file(self, tmp_path: Path) -> None:
        data = b"a,b\n" * (512 * 1024 // 4 + 1)
        async with upload_stack(tmp_path) as (stack, app):
            status, problem, rid = await post(stack, *s.one_file("big.csv", "text/csv", data))
            assert status == 413 and "512 KiB" in problem["detail"]
            await assert_refused_unseen(stack, app, rid, "file-too-large")

    async def test_too_many_parts(self, tmp_path: Path) -> None:
        body = s.form(*[(f"f{n}", None, None, b"x") for n in range(5)])
        async with upload_stack(tmp_path) as (stack, app):
            status, problem, rid = await post(stack, *body)
            assert status == 413 and "more than 4 parts" in problem["detail"]
            await assert_refused_unseen(stack, app, rid, "upload-limit")

    async def test_a_huge_part_header(self, tmp_path: Path) -> None:
        body = s.one_file("n" * 2000 + ".png", "image/png", s.png())
        async with upload_stack(tmp_path) as (stack, app):
            status, _, rid = await post(stack, *body)
            assert status == 413
            await assert_refused_unseen(stack, app, rid, "upload-limit")


class TestSimulateJudgesUploadsAsLiveTraffic:
    @pytest.mark.parametrize(
        ("name", "data", "reason"),
        [
            ("invoice.pdf", s.HTML, Reason.FILE_TYPE_REFUSED),
            ("../../x.png", s.png(), Reason.ROLE_ALLOWED),
        ],
        ids=["HTML posing as a PDF is refused", "a PNG with a path for a name is allowed"],
    )
    async def test_rules_simulate(
        self, tmp_path: Path, name: str, data: bytes, reason: Reason
    ) -> None:
        body, content_type = s.one_file(name, "application/octet-stream", data)
        async with upload_stack(tmp_path) as (stack, app):
            gw = stack.app[GATEWAY]
            alice = await principal_for(gw, ALICE)
            assert alice is not None
            explained = await explain(
                gw, principal=alice, method="POST", target="/api/files", body=body,
                content_type=content_type,
            )  # fmt: skip
            assert explained.decision.reason is reason, explained.steps
            assert app.total_hits == 0
