"""Alembic environment.

``gateway.store.migrate.migrate`` hands over an open connection (taken from the async
engine through ``AsyncConnection.run_sync``) in ``config.attributes["connection"]``. Run
from the ``alembic`` command line instead, the URL comes from ``sqlalchemy.url`` and an
async engine of :func:`gateway.store.engine.open_engine` is used the same way.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from gateway.store.engine import lock_migrations, open_engine
from gateway.store.tables import metadata


def run_with(connection: Connection) -> None:
    """Run the pending revisions on ``connection`` inside its transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = open_engine(url)
    try:
        async with engine.begin() as conn:
            await lock_migrations(conn)
            await conn.run_sync(run_with)
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported; run them online")
    connection = context.config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_from_url(context.config.get_main_option("sqlalchemy.url") or ""))
    else:
        run_with(connection)


main()
