"""Access requests (a person asks a tenant's admins for a role) and review attestations.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("role_wanted", sa.Text(), nullable=True),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("granted_role", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'declined')",
            name=op.f("ck_access_requests_known_state"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_access_requests_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
    )
    op.create_index(op.f("ix_access_requests_tenant"), "access_requests", ["tenant"], unique=False)
    op.create_index(
        op.f("ix_access_requests_user_id"), "access_requests", ["user_id"], unique=False
    )
    op.create_table(
        "review_attestations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_attestations")),
    )
    op.create_index(
        op.f("ix_review_attestations_tenant"), "review_attestations", ["tenant"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_review_attestations_tenant"), table_name="review_attestations")
    op.drop_table("review_attestations")
    op.drop_index(op.f("ix_access_requests_user_id"), table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_tenant"), table_name="access_requests")
    op.drop_table("access_requests")
