"""Registry changes: what other replicas read to evict the owners they cached.

Every registry write adds a row here (``object_id`` NULL: every object of the type, for
a bulk import) in the transaction that writes the owner; rows older than an hour are
swept by later writes. Processes that cannot hear ``NOTIFY gatehold_registry`` poll it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "registry_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registry_changes")),
        sqlite_autoincrement=True,  # a swept seq is never handed out again: pollers' cursor
    )
    op.create_index(op.f("ix_registry_changes_changed_at"), "registry_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_registry_changes_changed_at"), table_name="registry_changes")
    op.drop_table("registry_changes")
