"""A small legacy-style app that trusts whatever reaches it, like the apps Gatehold guards.

It reads parameters the way common frameworks do, so a test can show what a smuggled
id or method would have done had the gateway let it through:

* form bodies through aiohttp's ``request.post()`` and JSON through ``request.json()``,
  both of which decode by the *declared* charset (``utf-16-le``, ``utf-7``, ``latin-1``);
* ``_method`` in a POST's form, multipart or JSON body overrides the method, as
  Rails (``Rack::MethodOverride``), Laravel and Symfony do;
* every request is counted by its ``X-Request-Id``, so a test proves nothing arrived.

Things are owned by parity: odd ids belong to ``acme``, even ids to ``globex``
(``GET /internal/things/{id}`` answers the owner, for the gateway's http resolver).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from tests.support.stack import Stack, running_stack

SEEN = web.AppKey("seen", dict)
HITS = web.AppKey("hits", Counter)
OVERRIDABLE = {"PUT", "PATCH", "DELETE"}


def owner_of(thing: int) -> str:
    return "acme" if thing % 2 else "globex"


async def _multipart(request: web.Request, body: bytes) -> list[tuple[str, str]]:
    """Fields of a multipart body already read, by aiohttp's own multipart reader."""
    stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), len(body) + 2**16)
    stream.feed_data(body)
    stream.feed_eof()
    reader = MultipartReader(request.headers, stream)
    fields = []
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name is not None:
            value = "<file>" if part.filename else await part.text()
            fields.append((part.name, value))
    return fields


async def _params(request: web.Request, body: bytes) -> dict[str, list[str]]:
    """Query, form (by declared charset) and JSON parameters, merged as Rails does."""
    found: dict[str, list[str]] = {}
    for key, value in request.query.items():
        found.setdefault(key, []).append(value)
    if request.content_type == "multipart/form-data":
        for key, value in await _multipart(request, body):
            found.setdefault(key, []).append(value)
    elif request.content_type == "application/x-www-form-urlencoded":
        try:
            pairs = list((await request.post()).items())  # by the declared charset
        except UnicodeDecodeError:  # bytes as they come, as PHP reads them
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        for key, field in pairs:
            found.setdefault(key, []).append(str(field) if isinstance(field, str) else "<file>")
    elif "json" in request.content_type and request.body_exists:
        try:
            document = await request.json()  # decodes by the declared charset
        except (ValueError, UnicodeDecodeError, LookupError):
            document = None
        if isinstance(document, dict):
            for key, value in document.items():
                found.setdefault(key, []).append(json.dumps(value))
    return found


@web.middleware
async def method_override(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Record what the app would act on: the overridden method and every parameter."""
    request_id = request.headers.get("X-Request-Id", "-")
    if request.path.startswith("/internal/"):
        return await handler(request)
    request.app[HITS][request_id] += 1
    body = await request.read()
    params = await _params(request, body)
    method = request.method
    override = params.get("_method", [""])[-1].strip('"').upper()
    if method == "POST" and override in OVERRIDABLE:
        method = override
    request.app[SEEN][request_id] = {
        "method": method,
        "params": params,
        "body": body.decode("latin-1"),
        "tenant": request.headers.get("X-Gatehold-Tenant"),
    }
    return await handler(request)


async def owner(request: web.Request) -> web.Response:
    return web.json_response({"tenant": owner_of(int(request.match_info["id"]))})


async def act(request: web.Request) -> web.Response:
    seen = request.app[SEEN].get(request.headers.get("X-Request-Id", "-"), {})
    return web.json_response({"acted": seen})


def build_victim_app() -> web.Application:
    app = web.Application(middlewares=[method_override], client_max_size=64 * 1024 * 1024)
    app[SEEN] = {}
    app[HITS] = Counter()
    app.router.add_get("/internal/things/{id:[0-9]+}", owner)
    app.router.add_route("*", "/{rest:.*}", act)
    return app


class Victim:
    """Handle on a running victim app."""

    def __init__(self, app: web.Application, url: str) -> None:
        self.app = app
        self.url = url

    def hits(self, request_id: str) -> int:
        """Requests (not owner lookups) that reached the app with this request id."""
        return int(self.app[HITS][request_id])

    def seen(self, request_id: str) -> dict[str, Any]:
        """What the app read from the request with this id (empty if it never arrived)."""
        found: dict[str, Any] = self.app[SEEN].get(request_id, {})
        return found


RULES = """
version: 1
upstreams:
  victim: {{url: "{url}"}}
roles:
  standard: {{can: [read, write]}}
  admin: {{can: [read, write, delete]}}
resources:
  thing:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/things/{{id}}", tenant_field: /tenant}}
    cache: 0s
routes:
  - name: form-things
    match: {{path: "/form/things", methods: [POST]}}
    upstream: victim
    form_ids: [{{type: thing, field: thing}}]
  - name: json-things
    match: {{path: "/json/things", methods: [POST]}}
    upstream: victim
    body_ids: [{{type: thing, pointer: /thing}}, {{type: thing, pointer: /order/items/*/thing}}]
  - name: search-things
    match: {{path: "/search/things", methods: [GET, POST]}}
    upstream: victim
    query_ids: [{{type: thing, param: invoice_id}}]
  - name: nested-form
    match: {{path: "/nested/things", methods: [POST]}}
    upstream: victim
    form_ids: [{{type: thing, field: "order[thing]"}}]
  - name: thing-create
    match: {{path: "/things/{{thing_id:int}}", methods: [POST]}}
    upstream: victim
    resource: {{type: thing, id: path.thing_id}}
  - name: thing-update
    match: {{path: "/things/{{thing_id:int}}", methods: [PUT, PATCH]}}
    upstream: victim
    resource: {{type: thing, id: path.thing_id}}
  - name: thing-delete
    match: {{path: "/things/{{thing_id:int}}", methods: [DELETE]}}
    upstream: victim
    resource: {{type: thing, id: path.thing_id}}
  - name: notes
    match: {{path: "/notes", methods: [POST]}}
    upstream: victim
  - name: small-form
    match: {{path: "/small/things", methods: [POST]}}
    upstream: victim
    form_ids: [{{type: thing, field: thing}}]
    max_body: 1KiB
  - name: item-post
    match: {{path: "/items/{{item:int}}", methods: [POST]}}
    upstream: victim
  - name: item-patch
    match: {{path: "/items/{{item:int}}", methods: [PATCH]}}
    upstream: victim
    max_body: 1KiB
  - name: public-post
    match: {{path: "/public/post", methods: [POST]}}
    upstream: victim
    public: true
"""
"""Routes over the victim: ids in forms, JSON, the query, a nested form field, and
object routes whose methods differ (for method overrides)."""


@asynccontextmanager
async def victim_server() -> AsyncIterator[Victim]:
    app = build_victim_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield Victim(app, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


@asynccontextmanager
async def guarded_victim(data_dir: Path, **settings: Any) -> AsyncIterator[tuple[Stack, Victim]]:
    """The victim behind a real gateway (with Ledger, the demo users and their sessions)."""
    async with victim_server() as victim:
        rules = RULES.format(url=victim.url)
        async with running_stack(data_dir, rules_text=rules, **settings) as stack:
            yield stack, victim
