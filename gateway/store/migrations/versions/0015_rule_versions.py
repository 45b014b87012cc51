"""Rules versions in the store, and the one active version every replica runs.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rule_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_versions")),
    )
    op.create_index(op.f("ix_rule_versions_source_hash"), "rule_versions", ["source_hash"])
    op.create_table(
        "rules_active",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=False),
        sa.Column("activated_by", sa.Text(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_rules_active_single_row")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["rule_versions.id"],
            name=op.f("fk_rules_active_version_id_rule_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules_active")),
    )


def downgrade() -> None:
    op.drop_table("rules_active")
    op.drop_index(op.f("ix_rule_versions_source_hash"), table_name="rule_versions")
    op.drop_table("rule_versions")
