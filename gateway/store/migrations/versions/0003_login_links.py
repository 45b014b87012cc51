"""Magic sign-in links: only the SHA-256 of each token is stored.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "login_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("rd", sa.Text(), nullable=False, server_default="/"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("client_ip", sa.Text(), nullable=False, server_default=""),
        sa.Column("binding_hash", sa.String(64), nullable=True),
    )
    op.create_index("ix_login_links_email", "login_links", ["email"])


def downgrade() -> None:
    op.drop_index("ix_login_links_email", table_name="login_links")
    op.drop_table("login_links")
