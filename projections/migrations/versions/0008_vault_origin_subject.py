"""Token vault rows say whose value they hold (the processor flow and the event's subject),
so an HR erasure can shred the erased employee's sealed values. Rows written before keep
both empty.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dlp_token_vault") as batch:
        batch.add_column(sa.Column("origin", sa.Text(), nullable=True))
        batch.add_column(sa.Column("subject", sa.Text(), nullable=True))
    op.create_index("ix_dlp_token_vault_origin_subject", "dlp_token_vault", ["origin", "subject"])


def downgrade() -> None:
    op.drop_index("ix_dlp_token_vault_origin_subject", table_name="dlp_token_vault")
    with op.batch_alter_table("dlp_token_vault") as batch:
        batch.drop_column("subject")
        batch.drop_column("origin")
