"""Marketing contacts in the read model (the clean marketing contacts topic).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "marketing_contacts",
        sa.Column("contact_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("lifecycle_stage", sa.Text(), nullable=True),
        sa.Column("lead_status", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("email_optout", sa.Boolean(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("source_updated_at", TS, nullable=False),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("contact_id", name="pk_marketing_contacts"),
    )
    op.create_index("ix_marketing_contacts_email", "marketing_contacts", ["email"])


def downgrade() -> None:
    op.drop_index("ix_marketing_contacts_email", table_name="marketing_contacts")
    op.drop_table("marketing_contacts")
