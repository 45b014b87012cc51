"""Migration 0008 gives an existing store its tenants, from what memberships and keys name."""

from __future__ import annotations

from alembic import command
from sqlalchemy import column, insert, table

from gateway.store import tenants as tenant_store
from gateway.store.migrate import alembic_config, migrate
from tests.support.store_backends import StoreUnderTest

# The tables as revision 0007 left them (only the columns written here).
USERS = table(
    "users", *map(column, ("id", "email", "display_name", "superadmin", "active", "created_at"))
)
MEMBERSHIPS = table("memberships", *map(column, ("user_id", "tenant", "role", "created_at")))
API_KEYS = table(
    "api_keys", *map(column, ("key_hash", "label", "tenant", "role", "created_at", "expires_at"))
)


async def test_existing_memberships_and_keys_become_tenants(empty_store: StoreUnderTest) -> None:
    engine = empty_store.engine
    person = {"display_name": "", "superadmin": False, "active": True, "created_at": 0}
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0007"))
        await conn.execute(
            insert(USERS),
            [
                {"id": 1, "email": "a@acme.test", **person},
                {"id": 2, "email": "o@example.test", **person},
            ],
        )
        await conn.execute(
            insert(MEMBERSHIPS),
            [
                {"user_id": 1, "tenant": "acme", "role": "standard", "created_at": 0},
                {"user_id": 1, "tenant": "globex", "role": "readonly", "created_at": 0},
                {"user_id": 2, "tenant": "*", "role": "operator", "created_at": 0},
            ],
        )
        await conn.execute(
            insert(API_KEYS),
            [
                {
                    "key_hash": "h",
                    "label": "",
                    "tenant": "initech",
                    "role": "readonly",
                    "created_at": 0,
                    "expires_at": 1,
                }
            ],
        )
    await migrate(engine)
    tenants = await tenant_store.list_tenants(engine)
    assert [(t.id, t.display_name, t.active) for t in tenants] == [
        ("acme", "acme", True),
        ("globex", "globex", True),
        ("initech", "initech", True),
    ]
