"""Read model (leads, quarantine records), audit trail and projection offsets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone_e164", sa.Text(), nullable=True),
        sa.Column("phone_display", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("lead_source", sa.Text(), nullable=True),
        sa.Column("lead_status", sa.Text(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_leads"),
    )
    op.create_table(
        "quarantine_records",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("quarantine_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("connector", sa.Text(), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_row", sa.BigInteger(), nullable=True),
        sa.Column("source_topic", sa.Text(), nullable=True),
        sa.Column("source_partition", sa.Integer(), nullable=True),
        sa.Column("source_offset", sa.BigInteger(), nullable=True),
        sa.Column("source_event_id", sa.Text(), nullable=True),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.Text(), nullable=True),
        sa.Column("payload_format", sa.Text(), nullable=True),
        sa.Column("quarantined_at", TS, nullable=False),
        sa.Column("status", sa.String(32), server_default="open", nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_quarantine_records"),
    )
    op.create_index("ix_quarantine_records_quarantine_id", "quarantine_records", ["quarantine_id"])
    op.create_index("ix_quarantine_records_stage", "quarantine_records", ["stage"])
    op.create_index("ix_quarantine_records_entity_id", "quarantine_records", ["entity_id"])
    op.create_index("ix_quarantine_records_status", "quarantine_records", ["status"])
    op.create_table(
        "quarantine_reasons",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["quarantine_records.event_id"],
            name="fk_quarantine_reasons_event_id_quarantine_records",
        ),
        sa.PrimaryKeyConstraint("event_id", "position", name="pk_quarantine_reasons"),
    )
    op.create_index("ix_quarantine_reasons_rule_id", "quarantine_reasons", ["rule_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("payload_digest", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("event_id", name="uq_audit_log_event_id"),
        sa.UniqueConstraint(
            "topic", "partition", "offset", name="uq_audit_log_topic_partition_offset"
        ),
    )
    op.create_table(
        "projection_offsets",
        sa.Column("projection", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition", name="pk_projection_offsets"),
    )


def downgrade() -> None:
    op.drop_table("projection_offsets")
    op.drop_table("audit_log")
    op.drop_index("ix_quarantine_reasons_rule_id", table_name="quarantine_reasons")
    op.drop_table("quarantine_reasons")
    op.drop_table("quarantine_records")
    op.drop_table("leads")
