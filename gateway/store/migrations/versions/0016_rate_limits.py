"""Rate limits every replica shares: counted hits and enumeration blocks.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hits",
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "item", name=op.f("pk_rate_limit_hits")),
    )
    op.create_index(op.f("ix_rate_limit_hits_expires_at"), "rate_limit_hits", ["expires_at"])
    op.create_table(
        "enumeration_blocks",
        sa.Column("principal", sa.Text(), autoincrement=False, nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("principal", name=op.f("pk_enumeration_blocks")),
    )
    op.create_index(
        op.f("ix_enumeration_blocks_blocked_until"), "enumeration_blocks", ["blocked_until"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_enumeration_blocks_blocked_until"), table_name="enumeration_blocks")
    op.drop_table("enumeration_blocks")
    op.drop_index(op.f("ix_rate_limit_hits_expires_at"), table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
