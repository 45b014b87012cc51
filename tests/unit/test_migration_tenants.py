"""Migration 0008 gives an existing store its tenants, from what memberships and keys name."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from gateway.store import tenants as tenant_store
from gateway.store.engine import open_engine
from gateway.store.migrate import alembic_config, migrate


async def test_existing_memberships_and_keys_become_tenants(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0007"))
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, display_name, superadmin, active, created_at)"
                    " VALUES (1, 'a@acme.test', '', 0, 1, 0), (2, 'o@example.test', '', 0, 1, 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO memberships (user_id, tenant, role, created_at) VALUES "
                    "(1, 'acme', 'standard', 0), (1, 'globex', 'readonly', 0),"
                    " (2, '*', 'operator', 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO api_keys (key_hash, label, tenant, role, created_at, expires_at)"
                    " VALUES ('h', '', 'initech', 'readonly', 0, 1)"
                )
            )
        await migrate(engine)
        tenants = await tenant_store.list_tenants(engine)
        assert [(t.id, t.display_name, t.active) for t in tenants] == [
            ("acme", "acme", True),
            ("globex", "globex", True),
            ("initech", "initech", True),
        ]
    finally:
        await engine.dispose()
