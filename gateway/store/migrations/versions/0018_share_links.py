"""Share links of files: a hashed random token bound to a path, an object and a person.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), server_default="", nullable=False),
        sa.Column("object_id", sa.Text(), server_default="", nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_share_links_token_hash")),
    )
    for column in ("tenant", "recipient", "created_by"):
        op.create_index(op.f(f"ix_share_links_{column}"), "share_links", [column])


def downgrade() -> None:
    for column in ("tenant", "recipient", "created_by"):
        op.drop_index(op.f(f"ix_share_links_{column}"), table_name="share_links")
    op.drop_table("share_links")
