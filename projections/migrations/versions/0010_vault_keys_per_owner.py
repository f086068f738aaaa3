"""Token vault rows are keyed by the vault topic's key — the token and whose value it is —
rather than by the token alone, so a value two people share has a row for each and an
erasure takes only the erased person's. Existing rows keep their token as their key (the
topic's key when they were written); the tombstone outbox holds keys. Run it (the new
projection worker) before the new processors: an owner-keyed entry filed under its bare
token by the old projection would get the wrong key here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dlp_token_vault") as batch:
        batch.add_column(sa.Column("vault_key", sa.Text(), nullable=True))
    op.execute("UPDATE dlp_token_vault SET vault_key = token")
    with op.batch_alter_table("dlp_token_vault") as batch:
        batch.alter_column("vault_key", existing_type=sa.Text(), nullable=False)
        batch.drop_constraint("pk_dlp_token_vault", type_="primary")
        batch.create_primary_key("pk_dlp_token_vault", ["vault_key"])
    op.create_index("ix_dlp_token_vault_token", "dlp_token_vault", ["token"])
    with op.batch_alter_table("dlp_vault_tombstones") as batch:
        batch.alter_column("token", new_column_name="vault_key", existing_type=sa.Text())


def downgrade() -> None:
    # One row per token again: the latest sealed stays, a token's other owners' rows go.
    # The outbox keeps its keys: a tombstone is still due for each key, whatever its form.
    with op.batch_alter_table("dlp_vault_tombstones") as batch:
        batch.alter_column("vault_key", new_column_name="token", existing_type=sa.Text())
    op.execute(
        "DELETE FROM dlp_token_vault WHERE EXISTS (SELECT 1 FROM dlp_token_vault newer "
        "WHERE newer.token = dlp_token_vault.token AND (newer.sealed_at > "
        "dlp_token_vault.sealed_at OR (newer.sealed_at = dlp_token_vault.sealed_at "
        "AND newer.vault_key > dlp_token_vault.vault_key)))"
    )
    op.drop_index("ix_dlp_token_vault_token", table_name="dlp_token_vault")
    with op.batch_alter_table("dlp_token_vault") as batch:
        batch.drop_constraint("pk_dlp_token_vault", type_="primary")
        batch.create_primary_key("pk_dlp_token_vault", ["token"])
        batch.drop_column("vault_key")
