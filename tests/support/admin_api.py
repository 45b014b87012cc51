"""Calling the admin API as a signed-in person (cookie + CSRF token) or with an admin key."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from gateway.app import ENGINE
from gateway.store import api_keys
from tests.support.stack import Stack

PREFIX = "/.gatehold/api"


@dataclass
class Reply:
    status: int
    body: Any
    content_type: str
    request_id: str


@dataclass
class AdminClient:
    """One caller of the admin API on a running stack."""

    stack: Stack
    headers: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        headers = dict(self.headers) | kwargs.pop("headers", {})
        if self.csrf is not None and method not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        if body is not None:
            kwargs["json"] = body
        response = await self.stack.client.request(method, PREFIX + path, headers=headers, **kwargs)
        raw = await response.read()
        content_type = response.headers.get("Content-Type", "")
        parsed: Any = raw.decode()
        if "json" in content_type and not content_type.startswith("application/jsonl") and raw:
            parsed = json.loads(raw)
        return Reply(
            response.status, parsed, content_type, response.headers.get("X-Request-Id", "")
        )

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("GET", path, **kwargs)


async def as_person(stack: Stack, email: str) -> AdminClient:
    """A signed-in person's client, holding the CSRF token ``GET /me`` returned."""
    client = AdminClient(stack, headers=stack.cookie(email))
    me = await client.get("/me")
    assert me.status == 200, me.body
    client.csrf = me.body["csrf_token"]
    return client


async def admin_key(stack: Stack, tenant: str, *, admin: bool = True, role: str = "admin") -> str:
    _, key = await api_keys.create_key(
        stack.app[ENGINE],
        tenant=tenant,
        role=role,
        label=f"{tenant}-admin" if admin else tenant,
        ttl=3600,
        now=time.time(),
        admin=admin,
    )
    return key


def with_key(stack: Stack, key: str) -> AdminClient:
    return AdminClient(stack, headers={"Authorization": f"Bearer {key}"})


async def api_rows(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    """The ``admin-api`` audit rows of one call."""
    return [row for row in await stack.audit_rows(request_id) if row["kind"] == "admin-api"]


async def store_snapshot(stack: Stack) -> dict[str, list[tuple[Any, ...]]]:
    """Every row an admin change could touch: people, grants, tenants, keys, sessions."""
    queries = {
        "users": "SELECT id, email, superadmin, active FROM users ORDER BY id",
        "memberships": "SELECT user_id, tenant, role FROM memberships ORDER BY 1, 2, 3",
        "tenants": "SELECT id, display_name, active FROM tenants ORDER BY id",
        "api_keys": "SELECT id, tenant, role, admin, revoked_at FROM api_keys ORDER BY id",
        "sessions": "SELECT id_hash, revoked_at FROM sessions ORDER BY id_hash",
    }
    async with stack.app[ENGINE].connect() as conn:
        return {
            name: [tuple(row) for row in await conn.execute(text(sql))]
            for name, sql in queries.items()
        }
