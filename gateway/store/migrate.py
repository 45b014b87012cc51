"""Bring the store's schema up to date (Alembic ``upgrade head``; safe to run every start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import lock_migrations, writing

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped revisions, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending revision in one transaction; a no-op when the schema is current.

    Raises ``StoreUnavailable`` when the store cannot be reached or written.
    """
    async with writing(engine) as conn:
        await lock_migrations(conn)
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "heads"))
