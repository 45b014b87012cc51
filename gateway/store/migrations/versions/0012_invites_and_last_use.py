"""When a person was invited and first and last signed in; when an API key was last used.

Revision ID: 0012
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("invited_at", sa.Float(), nullable=True))
        users.add_column(sa.Column("invited_by", sa.Text(), server_default="", nullable=False))
        users.add_column(sa.Column("first_login_at", sa.Float(), nullable=True))
        users.add_column(sa.Column("last_login_at", sa.Float(), nullable=True))
    with op.batch_alter_table("api_keys") as keys:
        keys.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_column("last_used_at")
    with op.batch_alter_table("users") as users:
        users.drop_column("last_login_at")
        users.drop_column("first_login_at")
        users.drop_column("invited_by")
        users.drop_column("invited_at")
