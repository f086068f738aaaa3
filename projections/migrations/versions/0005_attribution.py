"""Campaign attribution: touches from marketing e-mail events (a table) and sales leads
(their rows, keyed by the new ``leads.person``), and the first-/last-touch views per
contact and per campaign.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

# Every touch: the e-mail touches, and each lead with an address and a source (at its
# creation date, midnight UTC, else when it was last written). The lead's time is written
# in the database's own timestamp form: SQLite keeps text as SQLAlchemy writes it.
LEAD_TIME = {
    "sqlite": "COALESCE(created_on || ' 00:00:00.000000', updated_at)",
    "postgresql": "COALESCE(CAST(created_on AS TIMESTAMP) AT TIME ZONE 'UTC', updated_at)",
}
ALL_TOUCHES = """
CREATE VIEW attribution_all_touches AS
SELECT touch_id, person, campaign, channel, touch_type, touched_at
FROM attribution_touches
UNION ALL
SELECT 'lead:' || lead_id, person, 'sales:' || lead_source, 'sales-lead', 'LEAD', {lead_time}
FROM leads
WHERE person IS NOT NULL AND lead_source IS NOT NULL
"""

# First and last touch per person: the earliest and the latest touch (ties broken by the
# touch id, so the answer never depends on the order rows were written in).
BY_CONTACT = """
CREATE VIEW attribution_by_contact AS
SELECT person,
       COUNT(*) AS touches,
       MAX(CASE WHEN first_rank = 1 THEN campaign END) AS first_touch_campaign,
       MAX(CASE WHEN first_rank = 1 THEN channel END) AS first_touch_channel,
       MAX(CASE WHEN first_rank = 1 THEN touched_at END) AS first_touch_at,
       MAX(CASE WHEN last_rank = 1 THEN campaign END) AS last_touch_campaign,
       MAX(CASE WHEN last_rank = 1 THEN channel END) AS last_touch_channel,
       MAX(CASE WHEN last_rank = 1 THEN touched_at END) AS last_touch_at
FROM (
    SELECT person, campaign, channel, touched_at,
           ROW_NUMBER() OVER (PARTITION BY person ORDER BY touched_at, touch_id) AS first_rank,
           ROW_NUMBER() OVER (
               PARTITION BY person ORDER BY touched_at DESC, touch_id DESC
           ) AS last_rank
    FROM attribution_all_touches
) AS ranked
GROUP BY person
"""

# Per campaign: its touches, the people it touched, and how many of them it touched first
# (first-touch credit) and last (last-touch credit).
BY_CAMPAIGN = """
CREATE VIEW attribution_by_campaign AS
SELECT t.campaign,
       t.channel,
       t.touches,
       t.contacts,
       COALESCE(f.n, 0) AS first_touch_contacts,
       COALESCE(l.n, 0) AS last_touch_contacts
FROM (
    SELECT campaign, MIN(channel) AS channel, COUNT(*) AS touches,
           COUNT(DISTINCT person) AS contacts
    FROM attribution_all_touches GROUP BY campaign
) AS t
LEFT JOIN (
    SELECT first_touch_campaign AS campaign, COUNT(*) AS n
    FROM attribution_by_contact GROUP BY first_touch_campaign
) AS f ON f.campaign = t.campaign
LEFT JOIN (
    SELECT last_touch_campaign AS campaign, COUNT(*) AS n
    FROM attribution_by_contact GROUP BY last_touch_campaign
) AS l ON l.campaign = t.campaign
"""


def upgrade() -> None:
    op.create_table(
        "attribution_touches",
        sa.Column("touch_id", sa.Text(), nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("campaign", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("touch_type", sa.Text(), nullable=False),
        sa.Column("touched_at", TS, nullable=False),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("touch_id", name="pk_attribution_touches"),
    )
    op.create_index("ix_attribution_touches_person", "attribution_touches", ["person"])
    op.create_index("ix_attribution_touches_campaign", "attribution_touches", ["campaign"])
    op.add_column("leads", sa.Column("person", sa.Text(), nullable=True))
    # Leads written before this revision: their person from their address (lower(): the
    # same as Python's casefold for the ASCII addresses such rows hold; new rows get
    # casefold from the projection).
    op.execute("UPDATE leads SET person = lower(email) WHERE email IS NOT NULL")
    dialect = op.get_bind().dialect.name
    op.execute(ALL_TOUCHES.format(lead_time=LEAD_TIME.get(dialect, LEAD_TIME["postgresql"])))
    op.execute(BY_CONTACT)
    op.execute(BY_CAMPAIGN)


def downgrade() -> None:
    op.execute("DROP VIEW attribution_by_campaign")
    op.execute("DROP VIEW attribution_by_contact")
    op.execute("DROP VIEW attribution_all_touches")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("person")
    op.drop_index("ix_attribution_touches_campaign", table_name="attribution_touches")
    op.drop_index("ix_attribution_touches_person", table_name="attribution_touches")
    op.drop_table("attribution_touches")
