"""``/api-keys``: keys for partners' systems, and admin keys for this API."""

from __future__ import annotations

from gateway.admin import service
from gateway.admin.service import AdminError
from gateway.api.models import ApiKey, ApiKeys, CreatedApiKey, NewApiKey
from gateway.api.operations import API, Call, Empty
from gateway.config.durations import parse_duration
from gateway.store import api_keys as key_store


@API.get("/api-keys", response=ApiKeys)
async def list_api_keys(call: Call[Empty, Empty]) -> ApiKeys:
    """Keys of the tenants the caller administers (never the keys themselves)."""
    now = call.ctx.clock()
    rows = await service.list_api_keys(call.ctx)
    return ApiKeys(items=[ApiKey.of(row, now) for row in rows])


@API.post("/api-keys", body=NewApiKey, response=CreatedApiKey, status=201, errors=(404,))
async def create_api_key(call: Call[NewApiKey, Empty]) -> CreatedApiKey | AdminError:
    """Create a key bound to one tenant and role; the key is shown only in this answer."""
    body = call.body
    try:
        ttl = parse_duration(body.expires)
    except ValueError as error:
        return AdminError(f"expires: {error}")
    created = await service.create_api_key(
        call.ctx, tenant=body.tenant, role=body.role, label=body.label, ttl=ttl, admin=body.admin
    )
    if isinstance(created, AdminError):
        return created
    key_id, key = created
    row = await key_store.get_key(call.ctx.engine, key_id)
    if row is None:
        return AdminError(f"API key {key_id} vanished meanwhile", "not-found")
    return CreatedApiKey(key=key, api_key=ApiKey.of(row, call.ctx.clock()))


@API.delete("/api-keys/{key_id}", response=ApiKey, integers=frozenset({"key_id"}), errors=(404,))
async def revoke_api_key(call: Call[Empty, Empty]) -> ApiKey | AdminError:
    """Revoke a key now."""
    row = await service.revoke_api_key(call.ctx, call.path["key_id"])
    if isinstance(row, AdminError):
        return row
    revoked = await key_store.get_key(call.ctx.engine, row.id)
    return ApiKey.of(revoked or row, call.ctx.clock())
