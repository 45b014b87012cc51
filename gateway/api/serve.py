"""Serving the admin API: who calls, CSRF, parsing, problem+json, one audit row per call.

Authentication is a session cookie (resolved by the pipeline's own identity stage, then
``acting_admin``) or an admin API key (``Authorization: Bearer ghk_…``). A call carried
by a cookie that changes state must send ``X-CSRF-Token`` with the token ``GET /me``
returned (an HMAC of the session hash). Every call, refused or not, leaves an
``admin-api`` audit row with its method, path, status and outcome; the changes
themselves are audited by the admin service with their state before and after.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.admin.actors import acting_admin
from gateway.admin.parts import ServiceParts
from gateway.admin.service import Admin, AdminError
from gateway.api.operations import (
    PREFIX,
    Api,
    Call,
    Caller,
    Empty,
    Operation,
    Problem,
    ProblemLine,
)
from gateway.audit import event_entry
from gateway.auth.keys import CsrfTokens
from gateway.context import Gateway
from gateway.identity import API_KEY_PREFIX, unless_store_down
from gateway.ingress import new_request_id
from gateway.live import LIVE
from gateway.model import GLOBAL_TENANT, Principal, Rejection
from gateway.responses import OWN_PAGE_HEADERS
from gateway.store import api_keys as key_store

log = logging.getLogger("gatehold.api")

CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 1024 * 1024
"""Read only once the caller is authenticated; a rules version is the largest body."""
TITLES = {
    400: "The request is malformed",
    401: "Please authenticate",
    403: "Forbidden",
    404: "Not found",
    405: "This method is not allowed here",
    409: "Conflict",
    413: "The request body is too large",
    415: "The request body must be JSON",
    422: "The request is invalid",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """An answer that is an error: status, stable code, what to do."""

    status: int
    code: str
    detail: str
    actor: str = ""
    """Who was refused, when known (the audit row names them)."""
    problems: tuple[tuple[int | None, str], ...] = ()


class AdminApi:
    """Serves the operations of one ``Api`` table; built by ``app.py``."""

    def __init__(
        self, api: Api, csrf: CsrfTokens, document: Mapping[str, Any], parts: ServiceParts
    ) -> None:
        self.api = api
        self._csrf = csrf
        self._parts = parts
        self.document = json.dumps(document)

    def csrf_token(self, session_hash: str) -> str:
        return self._csrf.token("admin-api:" + session_hash)

    def mount(self, app: web.Application) -> None:
        """Add every operation, then a catch-all under the prefix (never the pipeline's)."""
        app.router.add_get(PREFIX + "/openapi.json", self.openapi)
        for op in self.api.operations:
            app.router.add_route(op.method, PREFIX + op.path, self._endpoint(op), name=op.name)
        app.router.add_route("*", PREFIX + "{tail:(?:/.*)?}", self.unknown)

    def _endpoint(self, op: Operation) -> Any:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self.serve(op, request)

        return endpoint

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document (public: it describes, it holds nothing)."""
        return web.Response(
            text=self.document,
            content_type="application/json",
            headers={**OWN_PAGE_HEADERS, "Cache-Control": "no-cache"},
        )

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        gw = request.app[LIVE].current
        caller = await self.authenticate(request, gw)
        actor = caller.actor if isinstance(caller, Refused) else caller[0].name
        refused = Refused(404, "not-found", f"no operation {request.method} {request.path}")
        await self._audit(gw, request, request_id, actor, refused.status, refused.code)
        return problem(refused, request_id)

    async def serve(self, op: Operation, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        live = request.app[LIVE]
        gw = live.enter()
        actor = ""
        try:
            caller = await self.authenticate(request, gw, people=op.people)
            if isinstance(caller, Refused):
                answer: web.StreamResponse = problem(caller, request_id)
                actor, outcome = caller.actor, caller.code
            else:
                actor = caller[0].name
                answer, outcome = await self._call(op, request, gw, *caller, request_id)
        finally:
            live.leave(gw)
        await self._audit(gw, request, request_id, actor, answer.status, outcome)
        return answer

    async def _call(
        self,
        op: Operation,
        request: web.Request,
        gw: Gateway,
        caller: Caller,
        admin: Admin,
        request_id: str,
    ) -> tuple[web.StreamResponse, str]:
        if op.changes and caller.session_hash is not None:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not self._csrf.valid("admin-api:" + caller.session_hash, sent):
                refused = Refused(
                    403,
                    "csrf-failed",
                    f"send the header {CSRF_HEADER} with the csrf_token GET {PREFIX}/me returns",
                )
                return problem(refused, request_id), refused.code
        parsed = await parse(op, request)
        if isinstance(parsed, Refused):
            return problem(parsed, request_id), parsed.code
        path, query, body = parsed
        ctx = self._parts.context(gw, admin)
        token = None if caller.session_hash is None else self.csrf_token(caller.session_hash)
        call = Call(request, ctx, gw, caller, path, query, body, csrf_token=token)
        result = await op.handler(call)
        if isinstance(result, AdminError):
            refused = Refused(
                result.status,
                result.code,
                result.message,
                problems=result.problems,
            )
            return problem(refused, request_id), refused.code
        if isinstance(result, web.StreamResponse):
            return result, "ok"
        if result is None:
            return web.Response(status=op.status, headers=_headers(request_id)), "ok"
        return (
            web.Response(
                status=op.status,
                text=result.model_dump_json(),
                content_type="application/json",
                headers=_headers(request_id),
            ),
            "ok",
        )

    async def authenticate(
        self, request: web.Request, gw: Gateway, *, people: bool = False
    ) -> tuple[Caller, Admin] | Refused:
        """The caller and the admin they act as, or why the call is refused (401/403).

        With ``people`` (an operation open to every signed-in person) someone who
        administers nothing acts as an ``Admin`` of no tenant.
        """
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.startswith(API_KEY_PREFIX):
            return await _admin_key(gw, credential)
        principal = unless_store_down(await gw.identity.resolve(request))
        if isinstance(principal, Rejection):
            return Refused(401, str(principal.reason), principal.detail)
        if not isinstance(principal, Principal):
            return Refused(
                401,
                "auth-required",
                "sign in (session cookie) or send an admin API key as Authorization: Bearer",
            )
        admin = acting_admin(principal, gw.policy.roles)
        if isinstance(admin, AdminError) and people and principal.session_hash is not None:
            admin = Admin(principal.email)
        if isinstance(admin, AdminError):
            return Refused(403, "forbidden", admin.message, actor=principal.email)
        return Caller(principal.email, principal.session_hash, principal), admin

    async def _audit(
        self,
        gw: Gateway,
        request: web.Request,
        request_id: str,
        actor: str,
        status: int,
        outcome: str,
    ) -> None:
        """One row per call: refused calls (401/403/404…) are as visible as changes."""
        await gw.audit.begin(
            event_entry(
                "admin-api",
                actor=actor or f"anonymous@{gw.ingress.client_address(request)}",
                request_id=request_id,
                method=request.method,
                path=request.path,
                decision="allow" if status < 400 else "deny",
                reason=outcome,
                status=status,
            )
        )


async def _admin_key(gw: Gateway, key: str) -> tuple[Caller, Admin] | Refused:
    """An admin key acts as admin of its tenant (of every tenant for ``*``).

    Read from the store on each call, so a revoked key stops at once in every process.
    """
    row = await key_store.find_key(gw.sessions.engine, key) if len(key) <= 100 else None
    if row is None or not row.live(time.time()):
        return Refused(401, "credential-invalid", "the API key was not accepted")
    name = f"apikey:{row.id}"
    if not row.admin:
        return Refused(
            403,
            "forbidden",
            "this API key is for upstream traffic; the admin API needs an admin key",
            actor=name,
        )
    if row.tenant == GLOBAL_TENANT:
        return Caller(name, None), Admin(name, superadmin=True)
    return Caller(name, None), Admin(name, tenants=frozenset({row.tenant}))


async def parse(
    op: Operation, request: web.Request
) -> tuple[dict[str, Any], BaseModel, BaseModel] | Refused:
    """The path parameters, query and body of ``op``, or why they are refused."""
    path: dict[str, Any] = dict(request.match_info)
    if not _plain_text(path) or not _plain_text(dict(request.query)):
        return Refused(400, "target-invalid", "the address holds NUL characters or lone surrogates")
    for name in op.integers:
        value = path[name]
        if not (value.isascii() and value.isdigit() and len(value) < 18):
            return Refused(404, "not-found", f"{name} {value!r} names nothing here")
        path[name] = int(value)
    try:
        query = op.query.model_validate(dict(request.query))
    except ValidationError as error:
        return Refused(422, "invalid", "query: " + _explain(error))
    if op.body is None:
        return path, query, Empty()
    document = await _json_body(request)
    if isinstance(document, Refused):
        return document
    try:
        body = op.body.model_validate(document)
    except ValidationError as error:
        return Refused(422, "invalid", "body: " + _explain(error))
    return path, query, body


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        return Refused(415, "body-unsupported", "send the body as application/json")
    if (request.content_length or 0) > MAX_BODY:
        return Refused(413, "body-too-large", f"a body may hold at most {MAX_BODY} bytes")
    raw = b""
    try:
        while chunk := await request.content.readany():
            raw += chunk
            if len(raw) > MAX_BODY:
                return Refused(413, "body-too-large", f"a body may hold at most {MAX_BODY} bytes")
    except (ValueError, OSError):
        return Refused(400, "body-invalid", "the body could not be read")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return Refused(400, "body-invalid", "the body is not valid JSON")
    if not _plain_text(document):
        return Refused(
            400,
            "body-invalid",
            "the body holds NUL characters, lone surrogates or nesting past 32 levels",
        )
    return document


def _plain_text(value: Any, depth: int = 0) -> bool:
    """No string in ``value`` holds NUL or a lone surrogate (which no store accepts)."""
    if isinstance(value, str):
        return "\x00" not in value and _encodable(value)
    if depth > 32:
        return False
    if isinstance(value, dict):
        return all(
            _plain_text(k, depth + 1) and _plain_text(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_plain_text(v, depth + 1) for v in value)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "(whole)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _headers(request_id: str) -> dict[str, str]:
    return {**OWN_PAGE_HEADERS, "X-Request-Id": request_id, "Cache-Control": "no-store"}


def problem(refused: Refused, request_id: str) -> web.Response:
    """A problem+json answer; a 401 carries its challenge."""
    headers: Mapping[str, str] = _headers(request_id)
    if refused.status == 401:
        headers = {**headers, "WWW-Authenticate": 'Bearer realm="gatehold"'}
    body = Problem(
        type=f"/.gatehold/problems/{refused.code}",
        title=TITLES.get(refused.status, "Error"),
        status=refused.status,
        detail=refused.detail,
        request_id=request_id,
        problems=[ProblemLine(line=line, message=text) for line, text in refused.problems]
        if refused.problems
        else None,
    )
    return web.Response(
        status=refused.status,
        text=body.model_dump_json(),
        content_type="application/problem+json",
        headers=headers,
    )
