"""The admin API's route table: each operation declared once, served and documented from it.

An endpoint is one decorated function::

    @API.get("/tenants/{tenant}", response=TenantOut, errors=(404,))
    async def read_tenant(call: Call[Empty, Empty]) -> TenantOut | AdminError:
        \"\"\"One tenant.\"\"\"

``serve.py`` authenticates the caller, checks CSRF, parses the path, query and body
into the declared models and turns the result (a model, ``None`` for 204, an
``AdminError`` or a streamed answer) into the response; ``openapi.py`` writes the
document from the same declarations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.admin.service import AdminContext, AdminError
from gateway.context import Gateway
from gateway.model import Principal

PREFIX = "/.gatehold/api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Empty(BaseModel):
    """No parameters: anything sent is refused (422)."""

    model_config = ConfigDict(extra="forbid")


class ProblemLine(BaseModel):
    """One problem of a refused text (rules), by line."""

    line: int | None
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 ``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    problems: list[ProblemLine] | None = None
    """Every problem of a refused text at once (a proposed rules version)."""


B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls the API, as authenticated (``serve.authenticate``)."""

    name: str
    """The audit actor: an email, or ``apikey:<id>``."""
    session_hash: str | None
    """Set when a session cookie carried the call: state changes then need the CSRF token."""
    principal: Principal | None = None
    """The signed-in person, when a session carried the call (``None`` for API keys)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[B, Q]):
    """One parsed call: the admin context, the live gateway, path, query and body."""

    request: web.Request
    ctx: AdminContext
    gateway: Gateway
    caller: Caller
    path: Mapping[str, Any]
    query: Q
    body: B
    csrf_token: str | None = None


Reply = BaseModel | AdminError | web.StreamResponse | None
Handler = Callable[[Call[Any, Any]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path, with everything needed to serve and document it."""

    method: str
    path: str
    """Relative to ``PREFIX``, with ``{name}`` parameters."""
    handler: Handler
    response: type[BaseModel] | None
    """The body of the success answer; ``None`` for 204 or a streamed answer."""
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] = Empty
    integers: frozenset[str] = frozenset()
    """Path parameters that are integers (anything else is answered 404)."""
    errors: tuple[int, ...] = ()
    """Statuses beyond those every operation may give (400, 401, 403, 422)."""
    streams: Mapping[str, str] = field(default_factory=dict)
    """For a streamed answer: media type -> what it is (documented instead of a model)."""
    people: bool = False
    """Open to every signed-in person, not only admins: the handler judges what each
    may do (share links: a person shares what they may download)."""

    @property
    def changes(self) -> bool:
        return self.method not in SAFE_METHODS

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def summary(self) -> str:
        return (self.handler.__doc__ or self.name).strip().splitlines()[0]

    def statuses(self) -> list[int]:
        """Every status this operation can answer with."""
        found = {self.status, 400, 401, 403, 422, *self.errors}
        if self.body is not None:
            found |= {413, 415}
        if self.integers:
            found.add(404)
        return sorted(found)


class Api:
    """The route table: operations in the order they were declared."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def operation(
        self, method: str, path: str, **options: Any
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        def register(handler: Callable[[Call[Any, Any]], Awaitable[Any]]) -> Handler:
            response = options.pop("response", None)
            self.operations.append(Operation(method, path, handler, response, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Any], Handler]:
        return self.operation("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Any], Handler]:
        return self.operation("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Any], Handler]:
        return self.operation("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Any], Handler]:
        return self.operation("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Any], Handler]:
        return self.operation("DELETE", path, **options)


API = Api()
"""The admin API's operations; the endpoint modules register on it when imported."""
