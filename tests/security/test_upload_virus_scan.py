"""Uploads are scanned by a real ClamAV before the app sees a byte (SPEC §7).

A real ``clamd`` runs on a local socket with a database holding the EICAR test
signature (``tests/support/clamav.py``); a real gateway sends each file to it as the
file's parts arrive and forwards nothing until every verdict is in. The attacks:

* the EICAR string in a file: alone, deep inside a large file (many pieces, spooled
  to disk), as the second file of a form after a clean one, as a raw ``PUT`` body.
  Refused with 422 ``file-infected`` naming the signature; the app got nothing; the
  ``deny`` row records the reason and the file.
* the scanner down, or unable to give a verdict (a file over its ``StreamMaxLength``):
  503 ``scanner-unavailable`` by default (fail closed), nothing forwarded; a route with
  ``on_unavailable: allow`` lets the upload through and records it as unscanned.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.clamd import Clamd
from tests.support import upload_samples as s
from tests.support.clamav import EICAR, SIGNATURE, RunningClamd, running_clamd
from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

ALICE = "alice@acme.test"
RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
routes:
  - name: scanned
    match: {{path: "/api/scanned", methods: [POST, PUT]}}
    upstream: app
    max_body: 8MiB
    upload: {{types: [txt, pdf, png], max_file: 8MiB, scan: {{on_unavailable: refuse}}}}
  - name: lenient
    match: {{path: "/api/lenient", methods: [POST]}}
    upstream: app
    upload: {{types: [txt], scan: {{on_unavailable: allow}}}}
"""


@asynccontextmanager
async def scan_stack(
    tmp_path: Path, *, stream_max: str = "64M"
) -> AsyncIterator[tuple[Stack, Scripted, RunningClamd]]:
    folder = tmp_path / "clamd"
    async with (
        running_clamd(folder, stream_max=stream_max) as clamd,
        scripted_upstream("app") as app,
        running_stack(
            tmp_path,
            rules_text=RULES.format(app=app.url),
            scanner={"clamd_socket": clamd.socket, "timeout": "5s"},
        ) as stack,
    ):
        yield stack, app, clamd


async def send(
    stack: Stack,
    body: bytes,
    content_type: str,
    *,
    path: str = "/api/scanned",
    method: str = "POST",
) -> tuple[int, dict[str, Any], str, dict[str, str]]:
    headers = {"Content-Type": content_type, "Accept": "application/json"} | stack.cookie(ALICE)
    response = await stack.client.request(method, path, data=io.BytesIO(body), headers=headers)
    text = await response.text()
    problem = json.loads(text) if response.status >= 400 else {}
    return response.status, problem, response.headers["X-Request-Id"], dict(response.headers)


async def request_row(stack: Stack, request_id: str) -> dict[str, Any]:
    (row,) = [r for r in await stack.audit_rows(request_id) if r["kind"] == "request"]
    row["data"] = json.loads(row["data"])
    return row


LARGE = b"clean line of text\n" * (3 * 1024 * 1024 // 19)
INFECTED = {
    "the EICAR file alone": s.form(("file", "readme.txt", "text/plain", EICAR)),
    "EICAR deep inside a 3 MiB text": s.form(
        ("file", "log.txt", "text/plain", LARGE + EICAR + b"\n" + LARGE[:1000])
    ),
    "EICAR as the second file after a clean one": s.form(
        ("first", "ok.txt", "text/plain", b"nothing to see\n"),
        ("second", "readme.txt", "text/plain", EICAR),
    ),
}


class TestInfectedUploadsNeverReachTheApp:
    @pytest.mark.parametrize("case", INFECTED, ids=list(INFECTED))
    async def test_a_form(self, tmp_path: Path, case: str) -> None:
        async with scan_stack(tmp_path) as (stack, app, _):
            status, problem, rid, _ = await send(stack, *INFECTED[case])
            assert status == 422 and problem["type"].endswith("/file-infected")
            assert SIGNATURE in problem["detail"]
            assert "readme.txt" in problem["detail"] or "log.txt" in problem["detail"]
            assert app.total_hits == 0 and app.bodies == {}
            row = await request_row(stack, rid)
            assert (row["decision"], row["reason"]) == ("deny", "file-infected")
            assert SIGNATURE in row["data"]["upload"]["refused"]

    async def test_a_raw_put_body(self, tmp_path: Path) -> None:
        async with scan_stack(tmp_path) as (stack, app, _):
            status, problem, rid, _ = await send(
                stack, b"note\n" + EICAR, "text/plain", method="PUT"
            )
            assert status == 422 and problem["type"].endswith("/file-infected")
            assert app.total_hits == 0
            assert (await request_row(stack, rid))["reason"] == "file-infected"


class TestCleanUploadsPass:
    async def test_clean_files_reach_the_app_after_their_verdict(self, tmp_path: Path) -> None:
        body, content_type = s.form(
            ("log", "log.txt", "text/plain", LARGE),
            ("doc", "a.pdf", "application/pdf", s.pdf()),
        )
        async with scan_stack(tmp_path) as (stack, app, _):
            status, _, rid, _ = await send(stack, body, content_type)
            assert status == 200
            assert LARGE in app.bodies[rid] and s.pdf() in app.bodies[rid]
            row = await request_row(stack, rid)
            assert row["decision"] == "allow" and row["data"]["upload"]["scan"] == "clean"


class TestAScannerWithoutAVerdictFailsClosed:
    async def test_a_stopped_scanner_refuses_uploads(self, tmp_path: Path) -> None:
        async with scan_stack(tmp_path) as (stack, app, clamd):
            clamd.stop()
            await _gone(clamd)
            status, problem, rid, headers = await send(stack, *s.one_file("a.txt", None, b"hi"))
            assert status == 503 and problem["type"].endswith("/scanner-unavailable")
            assert headers["Retry-After"]
            assert app.total_hits == 0
            assert (await request_row(stack, rid))["reason"] == "scanner-unavailable"

    async def test_a_file_over_the_scanners_stream_limit_is_refused(self, tmp_path: Path) -> None:
        async with scan_stack(tmp_path, stream_max="1M") as (stack, app, _):
            status, problem, _, _ = await send(stack, *s.one_file("log.txt", None, LARGE))
            assert status == 503 and problem["type"].endswith("/scanner-unavailable")
            assert app.total_hits == 0

    async def test_a_route_may_let_uploads_through_unscanned(self, tmp_path: Path) -> None:
        async with scan_stack(tmp_path) as (stack, app, clamd):
            clamd.stop()
            await _gone(clamd)
            body, content_type = s.one_file("a.txt", "text/plain", b"hi")
            status, _, rid, _ = await send(stack, body, content_type, path="/api/lenient")
            assert status == 200 and app.hit_count(rid) == 1
            row = await request_row(stack, rid)
            assert row["data"]["upload"]["scan"] == "unscanned"


async def _gone(clamd: RunningClamd) -> None:
    """Wait until the stopped daemon no longer answers."""
    for _ in range(200):
        if not await Clamd(clamd.socket, timeout=0.5).ping():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("clamd still answers after SIGTERM")
