"""Who is calling: session cookie (browsers) and, later, bearer credentials.

"Not present" falls through to the next method; "present but invalid" stops with a
``Rejection``, so a broken credential can never be mistaken for an anonymous caller
on a protected route (I4b). A credential that cannot be looked up because the store
is unreachable is a ``Rejection`` too (``store-unavailable``, answered 503): the caller
is unknown, never anonymous.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import StoreUnavailable
from gateway.model import (
    ANONYMOUS,
    Anonymous,
    IncomingRequest,
    Principal,
    Reason,
    Rejection,
)

COOKIE_NAME = "__Host-gatehold"


def unless_store_down(
    caller: Principal | Anonymous | Rejection,
) -> Principal | Anonymous | Rejection:
    """``caller``; raises ``StoreUnavailable`` for ``STORE_DOWN`` instead.

    For the gateway's own pages (sign-in, admin API, access requests): there a caller
    the store could not check would read as "not signed in" (a 401 or the sign-in
    page); raised, the safety net answers 503 like the pipeline does.
    """
    if caller is STORE_DOWN:
        raise StoreUnavailable(STORE_DOWN.detail)
    return caller


class CredentialLookup(Protocol):
    async def principal(self, token: str) -> Principal | None: ...


API_KEY_PREFIX = "ghk_"
STORE_DOWN = Rejection(
    Reason.STORE_UNAVAILABLE, "Your sign-in cannot be checked right now; try again shortly."
)


def several_session_cookies(headers: list[str], name: str) -> bool:
    """Whether the ``Cookie`` headers carry more than one cookie named ``name``.

    A browser sends two when another origin tossed one in beside ours (a parent
    domain's cookie, or a nameless cookie that browsers serialize as ``name=value``);
    aiohttp keeps one of them, which may be the attacker's session. Two are ambiguous,
    so the request is refused rather than read as either person (I4b). The pairs are
    split only when the name occurs twice in the text at all: almost never.
    """
    if sum(header.count(name) for header in headers) < 2:
        return False
    named = (
        pair
        for header in headers
        for pair in header.split(";")
        if pair.split("=", 1)[0].strip() == name
    )
    return sum(1 for _ in named) > 1


class Identity:
    """Resolves the caller of one request: bearer credential first, then the session cookie.

    ``Authorization`` headers of other schemes (e.g. Basic for the app behind) are not
    the gateway's and pass through untouched.
    """

    def __init__(
        self,
        *,
        sessions: CredentialLookup,
        api_keys: CredentialLookup | None = None,
        bearer: CredentialLookup | None = None,
        cookie_name: str = COOKIE_NAME,
    ) -> None:
        self._sessions = sessions
        self._api_keys = api_keys
        self._bearer = bearer
        self._cookie_name = cookie_name

    async def resolve(self, request: IncomingRequest) -> Principal | Anonymous | Rejection:
        """The principal, ``ANONYMOUS`` when no credential came, or why the credential failed."""
        try:
            return await self._resolve(request)
        except StoreUnavailable:
            return STORE_DOWN

    async def _resolve(self, request: IncomingRequest) -> Principal | Anonymous | Rejection:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return await self._bearer_principal(credential.strip())
        if several_session_cookies(request.headers.getall("Cookie", []), self._cookie_name):
            return Rejection(Reason.HEADER_INVALID, "more than one session cookie was sent")
        token = request.cookies.get(self._cookie_name)
        if token is None:
            return ANONYMOUS
        principal = await self._sessions.principal(token)
        if principal is None:
            return Rejection(Reason.SESSION_INVALID, "the session has expired or was ended")
        return principal

    async def _bearer_principal(self, credential: str) -> Principal | Rejection:
        lookup = self._api_keys if credential.startswith(API_KEY_PREFIX) else self._bearer
        principal = await lookup.principal(credential) if lookup and credential else None
        if principal is None:
            return Rejection(Reason.CREDENTIAL_INVALID, "the bearer credential was not accepted")
        return principal
