"""Bring the store's schema up to date (Alembic ``upgrade heads``; safe to run every start).

A store already at the newest shipped revision is recognised with one query, without
importing Alembic: a serving process then never loads it (several MiB of resident
memory per worker).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.store.engine import lock_migrations, reading, writing

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_REVISION = "0021"
"""The newest shipped revision; ``tests/unit/test_migrations.py`` keeps it Alembic's head."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped revisions, optionally bound to ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def current_revisions(engine: AsyncEngine) -> set[str]:
    """The revisions the store is at; empty for a new store (or one out of reach)."""
    try:
        async with reading(engine) as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return {str(version) for (version,) in rows}
    except StoreUnavailable:  # no version table yet; a real outage shows in migrate()
        return set()


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending revision in one transaction; a no-op when the schema is current.

    Raises ``StoreUnavailable`` when the store cannot be reached or written.
    """
    if await current_revisions(engine) == {SCHEMA_REVISION}:
        return
    from alembic import command

    async with writing(engine) as conn:
        await lock_migrations(conn)
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "heads"))
