"""Alembic migrations of the store (run them with ``gateway.store.migrate.migrate``)."""
