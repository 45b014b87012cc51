"""Explain a decision without forwarding: "as alice@acme.test: GET /api/invoices/7".

Builds a request from the arguments and hands it to ``pipeline.decide``, the very
function that decides live traffic: ingress, the method override, routing, object
extraction, ownership, the enumeration block and policy. It stops where live traffic
goes on to the audit record and the upstream. The caller is a named user rather than a
credential (or an API key by its id), so identity is the one stage taken as given.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.auth.api_clients import key_principal
from gateway.context import Deciders
from gateway.model import GLOBAL_TENANT, Anonymous, AuthMethod, Decision, Principal, Rejection
from gateway.pipeline import decide
from gateway.store import api_keys as key_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.factors import factors_of


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision and the steps that led to it."""

    decision: Decision
    steps: tuple[str, ...]


class MemoryBody:
    """A request body held in memory, read as a socket's body is (``readany``)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def readany(self) -> bytes:
        body, self._body = self._body, b""
        return body


@dataclass(frozen=True, slots=True)
class SimulatedRequest:
    """A request that never crossed a socket (``model.IncomingRequest``)."""

    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    content: MemoryBody
    body_exists: bool
    cookies: Mapping[str, str] = field(default_factory=dict)
    remote: str | None = "127.0.0.1"
    scheme: str = "https"
    version: tuple[int, int] = (1, 1)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None


def simulated_request(
    method: str,
    target: str,
    *,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> SimulatedRequest:
    """A request for ``method target``; a body comes with its type and length."""
    sent: CIMultiDict[str] = CIMultiDict(headers or {})
    if body:
        sent.setdefault("Content-Type", content_type)
        sent["Content-Length"] = str(len(body))
    return SimulatedRequest(
        method=method.upper(),
        raw_path=target,
        headers=CIMultiDictProxy(sent),
        content=MemoryBody(body),
        body_exists=bool(body),
    )


async def principal_for(
    gw: Deciders,
    email: str,
    *,
    tenant: str | None = None,
    active_only: bool = False,
    mfa: bool | None = None,
) -> Principal | None:
    """The principal a user would be right after signing in (auth time = now).

    ``active_only``: ``None`` for a deactivated user too (who cannot sign in at all).
    ``mfa``: whether the sign-in showed a second factor; by default as it would have:
    yes for a person with one enrolled or whom the rules ask for one (who enrols first).
    """
    user = await user_store.get_user_by_email(gw.sessions.engine, email)
    if user is None or (active_only and not user.active):
        return None
    inactive = await tenant_store.inactive_tenant_ids(gw.sessions.engine)
    granting = tuple(m for m in user.memberships if m.tenant not in inactive)
    tenants = [m.tenant for m in granting if m.tenant != GLOBAL_TENANT]
    now = time.time()
    if mfa is None:
        enrolled = (await factors_of(gw.sessions.engine, user.id)).second_factor
        mfa = enrolled or gw.policy.requires_mfa(granting)
    return Principal(
        user_id=str(user.id),
        email=user.email,
        memberships=granting,
        auth_method=AuthMethod.NONE,
        auth_time=now,
        active_tenant=tenant or (tenants[0] if tenants else None),
        superadmin=user.superadmin,
        mfa_time=now if mfa else None,
    )


async def principal_for_key(gw: Deciders, key_id: int) -> Principal | str:
    """The principal API key ``key_id`` is on live traffic now, or why it is none."""
    engine = gw.sessions.engine
    row = await key_store.get_key(engine, key_id)
    if row is None:
        return f"no API key {key_id}; `gatehold apikey list` shows them"
    if row.tenant in await tenant_store.inactive_tenant_ids(engine):
        return f"API key {key_id} belongs to deactivated tenant {row.tenant!r}; it is refused"
    if row.revoked_at is not None:
        return f"API key {key_id} is revoked; it is refused on live traffic"
    if row.admin:
        return f"API key {key_id} is an admin key; it is refused on live traffic"
    if not row.live(time.time()):
        return f"API key {key_id} has expired; it is refused on live traffic"
    return key_principal(row)


async def explain(
    gw: Deciders,
    *,
    principal: Principal | Anonymous,
    method: str,
    target: str,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Explanation:
    """Decide one simulated request exactly as the pipeline decides live traffic.

    ``principal`` is the caller: a user as right after signing in, or ``ANONYMOUS``.
    """
    request = simulated_request(
        method, target, body=body, content_type=content_type, headers=headers
    )
    verdict = await decide(gw, request, principal=principal)
    if isinstance(verdict.admitted, Rejection):
        refusal = verdict.admitted
        return Explanation(verdict.decision, (f"target refused at ingress: {refusal.detail}",))
    if isinstance(verdict.prepared, Rejection):
        refusal = verdict.prepared
        return Explanation(verdict.decision, (f"body refused: {refusal.detail}",))
    return Explanation(verdict.decision, verdict.decision.explain)
