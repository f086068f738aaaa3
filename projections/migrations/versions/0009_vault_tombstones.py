"""Outbox of the token vault's tombstones: the tokens an HR erasure took out of the vault,
until the projection worker has published a tombstone for each on the compacted topic.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dlp_vault_tombstones",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("queued_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_dlp_vault_tombstones"),
    )


def downgrade() -> None:
    op.drop_table("dlp_vault_tombstones")
