"""A small real upstream whose answers a test scripts: owner lookups and API answers.

It runs on a loopback port (aiohttp AppRunner) and records what reached it:

* ``/internal/owners/{id}``: an owner-lookup endpoint answering ``{"tenant": …}`` from
  ``owners`` (404 for an unknown id). Every lookup is counted, and the highest number
  of lookups being answered at the same moment is kept (``max_concurrent``); ``delay``
  holds each lookup open so that concurrency becomes visible.
* every other path: answered by ``answers[path]`` (status, headers, body chunks), and
  counted per ``X-Request-Id`` so a test can prove a refused request never arrived;
  the body and headers each one delivered are kept too.
  An answer with a ``file`` serves it as aiohttp's ``FileResponse`` does, honouring
  ``Range``, ``If-Range``, ``If-None-Match`` and ``If-Modified-Since`` (206, 304, 416).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    """One scripted answer: the body is sent as the given chunks (chunked encoding)."""

    status: int = 200
    chunks: tuple[bytes, ...] = ()
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = True
    compress: bool = False
    """Compress the body when the request accepts it, as many apps' servers do."""
    file: Path | None = None
    """Serve this file instead of ``chunks``, with ranges and conditional requests."""
    added: tuple[tuple[str, str], ...] = ()
    """Headers added after ``headers``, so that a name may be sent more than once."""

    @classmethod
    def json(cls, document: Any, status: int = 200, **extra: Any) -> Answer:
        return cls(status=status, chunks=(json.dumps(document).encode(),), **extra)


@dataclass
class Scripted:
    """State of one scripted upstream, shared with the test."""

    name: str
    owners: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    delay: float = 0.0
    lookups: list[str] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    """The request body each request id delivered (the last, if one came twice)."""
    request_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    """The request headers each request id arrived with (lower-case names)."""
    in_flight: int = 0
    max_concurrent: int = 0
    url: str = ""

    def hit_count(self, request_id: str) -> int:
        return self.hits.get(request_id, 0)

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())


STATE = web.AppKey("scripted", Scripted)


async def _lookup(request: web.Request) -> web.Response:
    state = request.app[STATE]
    object_id = request.match_info["id"]
    state.lookups.append(object_id)
    state.in_flight += 1
    state.max_concurrent = max(state.max_concurrent, state.in_flight)
    try:
        if state.delay:
            await asyncio.sleep(state.delay)
    finally:
        state.in_flight -= 1
    tenant = state.owners.get(object_id)
    if tenant is None:
        return web.json_response({"error": "no such object"}, status=404)
    return web.json_response({"id": object_id, "tenant": tenant, "served_by": state.name})


async def _answer(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request.headers.get("X-Request-Id", "-")
    state.hits[request_id] = state.hits.get(request_id, 0) + 1
    state.request_headers[request_id] = {k.lower(): v for k, v in request.headers.items()}
    state.bodies[request_id] = await request.read()
    answer = state.answers.get(request.path)
    if answer is None:
        return web.json_response({"path": request.path, "served_by": state.name})
    if answer.file is not None:
        return _file(answer, answer.file)
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    for name, value in answer.added:
        response.headers.add(name, value)
    if answer.content_type:
        response.content_type = answer.content_type
    if answer.compress:
        response.enable_compression()
    bodiless = answer.status in (204, 304)
    if answer.chunked and not bodiless:
        response.enable_chunked_encoding()
    elif not bodiless:
        response.content_length = sum(len(c) for c in answer.chunks)
    await response.prepare(request)
    if request.method != "HEAD" and not bodiless:
        for chunk in answer.chunks:
            await response.write(chunk)
            await asyncio.sleep(0)  # let each chunk leave on its own
    await response.write_eof()
    return response


def _file(answer: Answer, path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers=answer.headers)
    if answer.content_type:
        response.content_type = answer.content_type
    for name, value in answer.added:
        response.headers.add(name, value)
    return response


@asynccontextmanager
async def scripted_upstream(name: str, **state: Any) -> AsyncIterator[Scripted]:
    """A scripted upstream on a free loopback port; yields its state (``url`` set)."""
    scripted = Scripted(name, **state)
    app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads are read whole
    app[STATE] = scripted
    app.router.add_get("/internal/owners/{id}", _lookup)
    app.router.add_route("*", "/{tail:.*}", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    scripted.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield scripted
    finally:
        await runner.cleanup()
