"""``/rules/simulate``: how the active rules would decide a request, as a person or a key."""

from __future__ import annotations

from gateway.admin import rules, service
from gateway.admin.explain import explain, principal_for, principal_for_key
from gateway.admin.service import AdminError
from gateway.api.models import SimulateRequest, Simulation
from gateway.api.operations import API, Call, Empty
from gateway.model import Principal
from gateway.observe import simulated


@API.post("/rules/simulate", body=SimulateRequest, response=Simulation, errors=(404,))
async def simulate(call: Call[SimulateRequest, Empty]) -> Simulation | AdminError:
    """Decide a request as live traffic would, without forwarding or auditing it."""
    body = call.body
    if body.version is not None:
        return await _under_version(call, body, body.version)
    principal = await _caller(call, body)
    if isinstance(principal, AdminError):
        return principal
    result = await explain(
        call.gateway, principal=principal, method=body.method, target=body.target
    )
    verdict = result.decision
    return Simulation(
        decision=simulated(verdict),
        reason=str(verdict.reason),
        steps=list(result.steps),
    )


async def _under_version(
    call: Call[SimulateRequest, Empty], body: SimulateRequest, version: int
) -> Simulation | AdminError:
    """Decide under a stored version (the same ``decide``, that version's rules)."""
    if (body.user is None) == (body.api_key is None):
        return AdminError("give exactly one of user (an email) or api_key (a key id)")
    caller: str | int = body.user if body.user is not None else int(body.api_key or 0)
    result = await rules.simulate(
        call.ctx, version, caller, body.method, body.target, tenant=body.tenant
    )
    if isinstance(result, AdminError):
        return result
    return Simulation(
        decision=simulated(result.decision),
        reason=str(result.decision.reason),
        steps=list(result.steps),
    )


async def _caller(
    call: Call[SimulateRequest, Empty], body: SimulateRequest
) -> Principal | AdminError:
    """The person or key to simulate, if the caller administers them."""
    if (body.user is None) == (body.api_key is None):
        return AdminError("give exactly one of user (an email) or api_key (a key id)")
    if body.api_key is not None:
        if body.tenant is not None:
            return AdminError("an API key acts in its own tenant; leave out tenant")
        keys = {row.id for row in await service.list_api_keys(call.ctx)}
        if body.api_key not in keys:
            return AdminError(f"no API key {body.api_key}", "not-found")
        found = await principal_for_key(call.gateway, body.api_key)
        return AdminError(found) if isinstance(found, str) else found
    user = await service.get_user(call.ctx, body.user or "")
    if isinstance(user, AdminError):
        return user
    if body.tenant is not None and body.tenant not in {m.tenant for m in user.memberships}:
        return AdminError(f"{user.email} is no member of {body.tenant!r}")
    principal = await principal_for(call.gateway, user.email, tenant=body.tenant)
    return principal or AdminError(f"no user {user.email!r}", "not-found")
