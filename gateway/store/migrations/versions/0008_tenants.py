"""Tenants as objects, filled from the tenants existing memberships and API keys name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    tenants = op.create_table(
        "tenants",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    connection = op.get_bind()
    named = connection.execute(
        sa.text(
            "SELECT tenant FROM memberships WHERE tenant <> '*' "
            "UNION SELECT tenant FROM api_keys WHERE tenant <> '*'"
        )
    )
    now = time.time()
    rows = [
        {"id": tenant, "display_name": tenant, "active": True, "created_at": now}
        for (tenant,) in named
    ]
    if rows:
        op.bulk_insert(tenants, rows)


def downgrade() -> None:
    op.drop_table("tenants")
