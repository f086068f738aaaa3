"""The token vault's access log becomes a signed hash chain: each reveal row links to the
one before it (see projections.access_log). Rows written before this revision keep empty
links: verification counts them apart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dlp_vault_reveals") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("signature", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_dlp_vault_reveals_prev_hash", ["prev_hash"])


def downgrade() -> None:
    with op.batch_alter_table("dlp_vault_reveals") as batch:
        batch.drop_constraint("uq_dlp_vault_reveals_prev_hash", type_="unique")
        batch.drop_column("signature")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
