"""Service cases, HR employees and HR erasures in the read model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _lineage() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "service_cases",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("case_status", sa.Text(), nullable=False),
        sa.Column("case_status_policy", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=True),
        sa.Column("ticket_type", sa.Text(), nullable=True),
        sa.Column("requester_id", sa.BigInteger(), nullable=True),
        sa.Column("assignee_id", sa.BigInteger(), nullable=True),
        sa.Column("organization_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("source_updated_at", TS, nullable=False),
        sa.Column("generated_timestamp", sa.BigInteger(), nullable=False),
        *_lineage(),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_service_cases"),
    )
    op.create_index("ix_service_cases_case_status", "service_cases", ["case_status"])
    op.create_table(
        "hr_employees",
        sa.Column("employee_id", sa.Text(), nullable=False),
        sa.Column("employee_number", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("preferred_name", sa.Text(), nullable=True),
        sa.Column("work_email", sa.Text(), nullable=True),
        sa.Column("work_phone", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("division", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("employment_status", sa.Text(), nullable=True),
        sa.Column("hire_date", sa.Date(), nullable=True),
        sa.Column("termination_date", sa.Date(), nullable=True),
        sa.Column("supervisor_id", sa.Text(), nullable=True),
        sa.Column("source_system", sa.Text(), nullable=False),
        *_lineage(),
        sa.PrimaryKeyConstraint("employee_id", name="pk_hr_employees"),
    )
    op.create_table(
        "hr_erasures",
        sa.Column("employee_id", sa.Text(), nullable=False),
        sa.Column("erased_at", TS, nullable=False),
        sa.Column("source_system", sa.Text(), nullable=False),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("employee_id", name="pk_hr_erasures"),
    )


def downgrade() -> None:
    op.drop_table("hr_erasures")
    op.drop_table("hr_employees")
    op.drop_index("ix_service_cases_case_status", table_name="service_cases")
    op.drop_table("service_cases")
