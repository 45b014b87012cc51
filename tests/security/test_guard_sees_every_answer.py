"""The response guard inspects every answer of a guarded route, to its last byte.

The attacks: an error answer (404, 500) carrying another tenant's rows went out
unchecked, since the guard looked only at 2xx; an answer larger than the first
buffered chunk was refused even when clean, since the guard read one ``read()``'s
worth; a pointer with ``~1``/``~0`` escapes never matched; an HTML page on a guarded
route passed whenever its status was not 2xx. Now every status's body is read to the
end (up to the limit) and checked; what cannot be read as JSON is refused, except the
bodiless answers (204, 304, HEAD).

The upstream is a real scripted aiohttp app (``scripted_upstream``) that sends each
answer in chunks, with chunked transfer encoding.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
SECRET = "globex-secret-ledger-row"

RULES = """
version: 1
upstreams:
  app: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
routes:
  - name: guarded
    match: {{path: "/api/guarded/{{case:slug}}", methods: [GET, HEAD]}}
    upstream: app
    guard: {{tenant_field: "/items/*/tenant", mode: block}}
  - name: filtered
    match: {{path: "/api/filtered/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "/items/*/tenant", mode: filter}}
  - name: escaped
    match: {{path: "/api/escaped/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "/data/a~1b/*/te~0nant", mode: block}}
  - name: escaped-filter
    match: {{path: "/api/escaped-filter/{{case:slug}}", methods: [GET]}}
    upstream: app
    guard: {{tenant_field: "/data/a~1b/*/te~0nant", mode: filter}}
"""


def rows(tenant: str, count: int, *, start: int = 0) -> list[dict[str, Any]]:
    filler = "x" * 400
    return [{"id": start + n, "tenant": tenant, "note": filler} for n in range(count)]


def chunked(document: Any, *, pieces: int, status: int = 200) -> Answer:
    """``document`` as JSON cut into ``pieces`` chunks sent one by one."""
    data = json.dumps(document).encode()
    size = -(-len(data) // pieces)
    return Answer(
        status=status, chunks=tuple(data[i : i + size] for i in range(0, len(data), size))
    )


LEAKS: dict[str, tuple[str, Answer]] = {
    "a 404 carrying a foreign list": (
        "/api/guarded/leak-404",
        Answer.json({"error": "gone", "items": [{"tenant": "globex", "s": SECRET}]}, status=404),
    ),
    "a 500 carrying a foreign row deep in its debug output": (
        "/api/guarded/leak-500",
        Answer.json(
            {"error": "boom", "debug": {"query": {"row": {"tenant": "globex", "s": SECRET}}}},
            status=500,
        ),
    ),
    "a 403 mixing own and foreign rows": (
        "/api/guarded/leak-403",
        Answer.json({"items": [{"tenant": "acme"}, {"tenant": "globex", "s": SECRET}]}, status=403),
    ),
    "a foreign row in the last chunk of a long chunked list": (
        "/api/guarded/leak-at-end",
        chunked({"items": [*rows("acme", 600), {"tenant": "globex", "s": SECRET}]}, pieces=40),
    ),
    "an HTML 404 page on a guarded route": (
        "/api/guarded/html-404",
        Answer(
            status=404,
            chunks=(f"<h1>not found</h1><!-- {SECRET} -->".encode(),),
            content_type="text/html",
        ),
    ),
    "an HTML 200 page on a guarded route": (
        "/api/guarded/html-200",
        Answer(status=200, chunks=(f"<p>{SECRET}</p>".encode(),), content_type="text/html"),
    ),
    "a bare JSON string in an error answer": (
        "/api/guarded/scalar-500",
        Answer.json(f"tenant globex: {SECRET}", status=500),
    ),
    "an empty 200 answer": ("/api/guarded/empty-200", Answer(status=200, chunks=())),
    "duplicate keys that a client would read differently": (
        "/api/guarded/duplicate-keys",
        Answer(
            chunks=(
                b'{"items": [{"tenant": "globex", "s": "' + SECRET.encode() + b'",'
                b' "tenant": "acme"}]}',
            )
        ),
    ),
    "an answer nested too deep to parse": (
        "/api/guarded/deep",
        Answer(
            chunks=(
                b'{"s": "' + SECRET.encode() + b'", "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            )
        ),
    ),
    "a filtered route answering a foreign error body": (
        "/api/filtered/leak-404",
        Answer.json({"items": [{"tenant": "globex", "s": SECRET}]}, status=404),
    ),
    "an escaped pointer finding a foreign tenant": (
        "/api/escaped/leak",
        Answer.json({"data": {"a/b": [{"te~nant": "acme"}, {"te~nant": "globex", "s": SECRET}]}}),
    ),
}


@asynccontextmanager
async def guarded_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app") as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url)) as stack,
    ):
        yield stack, app


async def assert_blocked(stack: Stack, app: Scripted, response: ClientResponse) -> None:
    """Refused as guard-blocked after forwarding; the answer never reaches the client."""
    text = await response.text()
    assert response.status == 502, text
    assert json.loads(text)["type"].endswith("/guard-blocked")
    assert SECRET not in text
    request_id = response.headers["X-Request-Id"]
    assert app.hit_count(request_id) == 1, "forwarded once; its answer was what leaked"
    audit = await stack.audit_rows(request_id)
    assert audit[0]["decision"] == "allow"
    assert '"status":502' in audit[-1]["data"].replace(" ", "")


@pytest.mark.parametrize(("path", "answer"), LEAKS.values(), ids=LEAKS.keys())
async def test_a_leaking_answer_of_any_status_is_blocked(
    tmp_path: Path, path: str, answer: Answer
) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers[path] = answer
        response = await stack.client.get(path, headers=stack.cookie("alice@acme.test") | API)
        await assert_blocked(stack, app, response)


CLEAN: dict[str, tuple[str, Answer]] = {
    "a clean 500 KB list in many chunks": (
        "/api/guarded/big",
        chunked({"items": rows("acme", 1200)}, pieces=120),
    ),
    "a clean list with a known length": (
        "/api/guarded/sized",
        Answer(chunks=(json.dumps({"items": rows("acme", 900)}).encode(),), chunked=False),
    ),
    "a 404 that names no tenant": (
        "/api/guarded/clean-404",
        Answer.json({"error": "not found"}, status=404),
    ),
    "a 500 about the caller's own row": (
        "/api/guarded/own-500",
        Answer.json({"error": "boom", "debug": {"row": {"tenant": "acme"}}}, status=500),
    ),
    "a pointer with ~1 and ~0 escapes": (
        "/api/escaped/clean",
        Answer.json({"data": {"a/b": [{"te~nant": "acme"}, {"te~nant": "acme"}]}}),
    ),
}


@pytest.mark.parametrize(("path", "answer"), CLEAN.values(), ids=CLEAN.keys())
async def test_a_clean_answer_passes_whole(tmp_path: Path, path: str, answer: Answer) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers[path] = answer
        response = await stack.client.get(path, headers=stack.cookie("alice@acme.test") | API)
        assert response.status == answer.status
        assert await response.read() == b"".join(answer.chunks), "every byte, unchanged"


@pytest.mark.parametrize(
    ("method", "status"),
    [("GET", 204), ("GET", 304), ("HEAD", 200)],
    ids=["204 No Content", "304 Not Modified", "HEAD"],
)
async def test_answers_without_a_body_pass(tmp_path: Path, method: str, status: int) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/guarded/bodiless"] = Answer(
            status=status, chunks=(b'{"items": []}',), chunked=False
        )
        response = await stack.client.request(
            method, "/api/guarded/bodiless", headers=stack.cookie("alice@acme.test") | API
        )
        assert response.status == status
        assert await response.read() == b""


@pytest.mark.parametrize("status", [302, 404, 500])
async def test_an_empty_redirect_or_error_passes_but_an_empty_success_does_not(
    tmp_path: Path, status: int
) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/guarded/empty"] = Answer(
            status=status, chunks=(), headers={"Location": "/elsewhere"}
        )
        response = await stack.client.get(
            "/api/guarded/empty",
            headers=stack.cookie("alice@acme.test") | API,
            allow_redirects=False,
        )
        assert response.status == status, "an empty body carries no other tenant's data"
        assert await response.read() == b""


async def test_an_app_that_compresses_its_answers_is_still_checked(tmp_path: Path) -> None:
    """The gateway asks a guarded route's app for an uncompressed answer: a compressed one
    could be neither read nor passed on unread."""
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/guarded/zipped"] = Answer.json({"items": rows("acme", 50)}, compress=True)
        app.answers["/api/guarded/zipped-leak"] = Answer.json(
            {"items": [*rows("acme", 5), {"id": 99, "tenant": "globex", "s": SECRET}]},
            compress=True,
        )
        gzip_ok = {"Accept-Encoding": "gzip, deflate, br"}
        clean = await stack.client.get(
            "/api/guarded/zipped", headers=stack.cookie("alice@acme.test") | API | gzip_ok
        )
        assert clean.status == 200, await clean.text()
        assert len((await clean.json())["items"]) == 50
        leak = await stack.client.get(
            "/api/guarded/zipped-leak", headers=stack.cookie("alice@acme.test") | API | gzip_ok
        )
        await assert_blocked(stack, app, leak)


async def test_filter_mode_reads_a_long_chunked_list_to_its_end(tmp_path: Path) -> None:
    mixed = [*rows("acme", 300), *rows("globex", 300, start=300), *rows("acme", 300, start=600)]
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/filtered/mixed"] = chunked({"items": mixed, "total": 900}, pieces=60)
        response = await stack.client.get(
            "/api/filtered/mixed", headers=stack.cookie("alice@acme.test") | API
        )
        assert response.status == 200
        body = await response.json()
        assert [item["id"] for item in body["items"]] == [*range(300), *range(600, 900)]


async def test_filter_mode_honours_pointer_escapes(tmp_path: Path) -> None:
    document = {"data": {"a/b": [{"te~nant": "acme", "n": 1}, {"te~nant": "globex", "n": 2}]}}
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/escaped-filter/x"] = Answer.json(document)
        response = await stack.client.get(
            "/api/escaped-filter/x", headers=stack.cookie("alice@acme.test") | API
        )
        assert response.status == 200
        assert await response.json() == {"data": {"a/b": [{"te~nant": "acme", "n": 1}]}}


async def test_an_answer_over_the_limit_is_refused_not_cut(tmp_path: Path) -> None:
    async with guarded_stack(tmp_path) as (stack, app):
        app.answers["/api/guarded/huge"] = chunked(
            {"items": rows("acme", 21_000)}, pieces=200
        )  # about 9 MB, over the guard's 8 MiB
        response = await stack.client.get(
            "/api/guarded/huge", headers=stack.cookie("alice@acme.test") | API
        )
        assert response.status == 502
        assert (await response.json())["type"].endswith("/guard-blocked")
