"""Re-drives of quarantine records (crmhub quarantine redrive), one row per re-drive.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantine_redrives",
        sa.Column("redrive_id", sa.Text(), nullable=False),
        sa.Column("quarantine_id", sa.Text(), nullable=False),
        sa.Column("quarantine_event_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("redrive_id", name="pk_quarantine_redrives"),
    )
    op.create_index(
        "ix_quarantine_redrives_quarantine_id", "quarantine_redrives", ["quarantine_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_redrives_quarantine_id", table_name="quarantine_redrives")
    op.drop_table("quarantine_redrives")
