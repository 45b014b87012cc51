"""Explain a decision without forwarding: "as alice@acme.test: GET /api/invoices/7".

Runs exactly the stages that guard live traffic (ingress canonicalization, routing,
object extraction, ownership resolution, policy) on a request built from the
arguments, and stops before audit and forwarding.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.context import Gateway
from gateway.ingress import canonicalize
from gateway.model import (
    GLOBAL_TENANT,
    AuthMethod,
    Decision,
    Principal,
    Rejection,
    ResolvedRef,
    RouteMatch,
    Target,
)
from gateway.store import users as user_store


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision and the steps that led to it."""

    decision: Decision | Rejection
    steps: tuple[str, ...]


class _Payload:
    """A minimal body stream for a synthetic request (what ``make_mocked_request`` expects)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._done = False

    async def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self._body

    async def readany(self) -> bytes:
        return await self.read()

    def at_eof(self) -> bool:
        return self._done

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while chunk := await self.read(n):
            yield chunk


async def principal_for(gw: Gateway, email: str, *, tenant: str | None = None) -> Principal | None:
    """The principal a user would be right after signing in (auth time = now)."""
    user = await user_store.get_user_by_email(gw.sessions.engine, email)
    if user is None:
        return None
    tenants = [m.tenant for m in user.memberships if m.tenant != GLOBAL_TENANT]
    return Principal(
        user_id=str(user.id),
        email=user.email,
        memberships=tuple(user.memberships),
        auth_method=AuthMethod.NONE,
        auth_time=time.time(),
        active_tenant=tenant or (tenants[0] if tenants else None),
        superadmin=user.superadmin,
    )


async def explain(
    gw: Gateway,
    *,
    principal: Principal,
    method: str,
    target: str,
    body: bytes = b"",
    content_type: str = "application/json",
) -> Explanation:
    """Decide one synthetic request the way the pipeline would."""
    canonical = canonicalize(target)
    if not isinstance(canonical, Target):
        return Explanation(canonical, (f"target refused at ingress: {canonical.detail}",))
    headers = CIMultiDict({"Content-Type": content_type, "Content-Length": str(len(body))})
    request = make_mocked_request(
        method.upper(),
        canonical.raw,
        headers=headers,
        payload=_Payload(body),  # type: ignore[arg-type]  # duck-types StreamReader.read
    )
    prepared = await gw.overrides.prepare(request, canonical, principal)
    if isinstance(prepared, Rejection):
        return Explanation(prepared, (f"body refused: {prepared.detail}",))
    match = gw.router.match(canonical, prepared.method)
    owners: Sequence[ResolvedRef] | Rejection = ()
    if isinstance(match, RouteMatch) and match.route.ids:
        extracted = await gw.objects.extract(
            request, match, query=canonical.query, body=prepared.body
        )
        if isinstance(extracted, Rejection):
            owners = extracted
        else:
            owners = await gw.ownership.resolve(extracted.refs, upstream=match.route.upstream)
    decision = gw.policy.decide(
        principal=principal,
        match=match,
        method=prepared.method,
        objects=owners,
        now=time.time(),
    )
    return Explanation(decision, decision.explain)
