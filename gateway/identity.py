"""Who is calling: session cookie (browsers) and, later, bearer credentials.

"Not present" falls through to the next method; "present but invalid" stops with a
``Rejection``, so a broken credential can never be mistaken for an anonymous caller
on a protected route (I4b).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from gateway.model import ANONYMOUS, Anonymous, Principal, Reason, Rejection

COOKIE_NAME = "__Host-gatehold"


class SessionLookup(Protocol):
    async def principal(self, token: str) -> Principal | None: ...


class Identity:
    """Resolves the caller of one request."""

    def __init__(self, *, sessions: SessionLookup, cookie_name: str = COOKIE_NAME) -> None:
        self._sessions = sessions
        self._cookie_name = cookie_name

    async def resolve(self, request: web.BaseRequest) -> Principal | Anonymous | Rejection:
        """The principal, ``ANONYMOUS`` when no credential came, or why the credential failed."""
        if "Authorization" in request.headers:
            return Rejection(
                Reason.CREDENTIAL_INVALID, "this gateway does not accept Authorization headers"
            )
        token = request.cookies.get(self._cookie_name)
        if token is None:
            return ANONYMOUS
        principal = await self._sessions.principal(token)
        if principal is None:
            return Rejection(Reason.SESSION_INVALID, "the session has expired or was ended")
        return principal
