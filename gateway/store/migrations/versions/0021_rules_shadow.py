"""Shadow runs of rules versions and the decisions where they differed from the live one.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision: str | None = "0020"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shadow_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("started_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("stopped_by", sa.Text(), nullable=True),
        sa.Column("decided", sa.Integer(), server_default="0", nullable=False),
        sa.Column("agreed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unjudged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["rule_versions.id"],
            name=op.f("fk_shadow_runs_version_id_rule_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_runs")),
    )
    op.create_table(
        "shadow_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("live_version", sa.Integer(), nullable=False),
        sa.Column("live_route", sa.Text(), nullable=False),
        sa.Column("shadow_route", sa.Text(), nullable=False),
        sa.Column("live_decision", sa.String(8), nullable=False),
        sa.Column("live_reason", sa.Text(), nullable=False),
        sa.Column("shadow_decision", sa.String(8), nullable=False),
        sa.Column("shadow_reason", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["shadow_runs.id"],
            name=op.f("fk_shadow_groups_run_id_shadow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_groups")),
        sa.UniqueConstraint(
            "run_id",
            "live_version",
            "live_route",
            "shadow_route",
            "live_decision",
            "live_reason",
            "shadow_decision",
            "shadow_reason",
            name=op.f("uq_shadow_groups_run_id"),
        ),
    )
    op.create_table(
        "shadow_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("live_detail", sa.Text(), nullable=False),
        sa.Column("shadow_detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["shadow_groups.id"],
            name=op.f("fk_shadow_samples_group_id_shadow_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_samples")),
    )
    op.create_index(
        op.f("ix_shadow_samples_group_id"), "shadow_samples", ["group_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_shadow_samples_group_id"), table_name="shadow_samples")
    op.drop_table("shadow_samples")
    op.drop_table("shadow_groups")
    op.drop_table("shadow_runs")
