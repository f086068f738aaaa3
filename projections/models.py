"""Tables of the read model and the audit trail (SQLAlchemy 2.x declarative).

The schema itself is created by the Alembic migrations in ``projections/migrations``;
these classes describe it for queries and must stay in step with them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SourceLineage:
    """Where a row's latest event came from — its id and topic position, which keep the
    projection idempotent and join the audit trail — and the event's time
    (`projections.store.LINEAGE` names these columns)."""

    last_event_id: Mapped[str] = mapped_column(Text)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Event time (ce_time)")


class Lead(SourceLineage, Base):
    """The CRM's current view of a sales lead: the latest clean event per lead_id."""

    __tablename__ = "leads"

    lead_id: Mapped[str] = mapped_column(Text, primary_key=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    phone_e164: Mapped[str | None] = mapped_column(Text)
    phone_display: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    job_title: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    lead_source: Mapped[str | None] = mapped_column(Text)
    lead_status: Mapped[str | None] = mapped_column(Text)
    created_on: Mapped[date | None] = mapped_column(Date)
    owner: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    person: Mapped[str | None] = mapped_column(
        Text, doc="Case-folded e-mail address: the key attribution joins departments on"
    )


class MarketingContact(SourceLineage, Base):
    """The CRM's current view of a marketing contact: the latest clean event per contact
    (one that passed the marketing rules and holds its e-mail address alone)."""

    __tablename__ = "marketing_contacts"

    contact_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # Not UNIQUE: the processor keeps one holder per address, but a release and the next
    # holder's claim reach the read model on different partitions, in either order.
    email: Mapped[str | None] = mapped_column(Text, index=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    job_title: Mapped[str | None] = mapped_column(Text)
    lifecycle_stage: Mapped[str | None] = mapped_column(Text)
    lead_status: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    email_optout: Mapped[bool | None] = mapped_column(Boolean)
    archived: Mapped[bool] = mapped_column(Boolean)
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="updated_at in HubSpot")


class ServiceCase(SourceLineage, Base):
    """The CRM's current view of a service case: the latest clean event per ticket (its
    status mapped to the case-status enum, free text protected by DLP)."""

    __tablename__ = "service_cases"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subject: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, doc="The ticketing system's status as read")
    case_status: Mapped[str] = mapped_column(Text, index=True)
    case_status_policy: Mapped[str] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(Text)
    ticket_type: Mapped[str | None] = mapped_column(Text)
    requester_id: Mapped[int | None] = mapped_column(BigInteger)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    organization_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Created in the source")
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Updated in the source")
    generated_timestamp: Mapped[int] = mapped_column(BigInteger)


class HrEmployee(SourceLineage, Base):
    """The CRM's current view of an employee (owner of CRM records), as minimised by the HR
    connector. An erased employee has no row here (see ``HrErasure``)."""

    __tablename__ = "hr_employees"

    employee_id: Mapped[str] = mapped_column(Text, primary_key=True)
    employee_number: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    preferred_name: Mapped[str | None] = mapped_column(Text)
    work_email: Mapped[str | None] = mapped_column(Text)
    work_phone: Mapped[str | None] = mapped_column(Text)
    job_title: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    division: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    employment_status: Mapped[str | None] = mapped_column(Text)
    hire_date: Mapped[date | None] = mapped_column(Date)
    termination_date: Mapped[date | None] = mapped_column(Date)
    supervisor_id: Mapped[str | None] = mapped_column(Text)
    source_system: Mapped[str] = mapped_column(Text)


class HrErasure(Base):
    """An employee deleted at the HR source: the read model erased the employee's row and
    keeps none from later (or re-delivered earlier) events. Only the id and when: nothing
    personal."""

    __tablename__ = "hr_erasures"

    employee_id: Mapped[str] = mapped_column(Text, primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Deleted at the source")
    source_system: Mapped[str] = mapped_column(Text)
    last_event_id: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Event time (ce_time)")


class AttributionTouch(SourceLineage, Base):
    """One campaign e-mail touch of a person: a marketing e-mail opened or clicked. The
    person is the case-folded e-mail address (the one key the departments share). The view
    ``attribution_all_touches`` adds the sales leads' touches (a lead with an address and
    a source, read from ``leads``); ``attribution_by_contact`` and
    ``attribution_by_campaign`` derive first- and last-touch attribution from it (migration
    0005), so they are never out of step."""

    __tablename__ = "attribution_touches"

    touch_id: Mapped[str] = mapped_column(Text, primary_key=True)
    person: Mapped[str] = mapped_column(Text, index=True, doc="Case-folded e-mail address")
    campaign: Mapped[str] = mapped_column(Text, index=True, doc="email:<id> or sales:<source>")
    channel: Mapped[str] = mapped_column(Text, doc="marketing-email or sales-lead")
    touch_type: Mapped[str] = mapped_column(Text, doc="OPEN, CLICK or LEAD")
    touched_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QuarantineRow(Base):
    """One row per quarantine event, for data stewards. The payload stays on the topic."""

    __tablename__ = "quarantine_records"

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    quarantine_id: Mapped[str] = mapped_column(Text, index=True)
    stage: Mapped[str] = mapped_column(Text, index=True)
    department: Mapped[str | None] = mapped_column(Text)
    connector: Mapped[str | None] = mapped_column(Text)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_row: Mapped[int | None] = mapped_column(BigInteger)
    source_topic: Mapped[str | None] = mapped_column(Text)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    source_event_id: Mapped[str | None] = mapped_column(Text)
    entity_id: Mapped[str | None] = mapped_column(Text, index=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    policy_version: Mapped[str | None] = mapped_column(Text)
    payload_format: Mapped[str | None] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(32), server_default="open", index=True)
    # Where the quarantine event itself was read (for re-drive from the topic).
    topic: Mapped[str] = mapped_column(Text)
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)


class QuarantineReason(Base):
    """The reasons of a quarantine row, one per broken rule, so stewards can count and
    filter by rule id with plain SQL on any database."""

    __tablename__ = "quarantine_reasons"

    event_id: Mapped[str] = mapped_column(
        Text, ForeignKey("quarantine_records.event_id"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(Text, index=True)
    field: Mapped[str | None] = mapped_column(Text)


class QuarantineRedrive(Base):
    """One row per re-drive of a quarantine record (``crmhub quarantine redrive``), from the
    ``QuarantineRedriven`` events: who sent what where, and when. The quarantine row it
    re-drove shows ``status = 'redriven'``."""

    __tablename__ = "quarantine_redrives"

    redrive_id: Mapped[str] = mapped_column(Text, primary_key=True)
    quarantine_id: Mapped[str] = mapped_column(Text, index=True)
    quarantine_event_id: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(Text, doc="The QuarantineRedriven event (audit trail)")


class AuditEntry(Base):
    """Insert-only, hash-chained and signed record of every event consumed.

    One chain per (topic, partition), ordered by offset."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    event_type: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(UtcDateTime)
    payload_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(64))


class DlpVaultEntry(SourceLineage, Base):
    """The token vault (`hub.dlp.vault`): a deterministic token and its value sealed to the
    vault's public key, which only the private key's holder opens. One row per key of
    ``crm.dlp.vault.v1`` — a token and whose value it is (`hub.dlp.vault.entry_key`) —
    from the key's latest entry, the one compaction keeps, so a vault rebuilt from the
    compacted topic equals the live one. A value two people share has a row for each:
    erasing one leaves the other's. Rows written before revision 0010 have the bare token
    as their key (the topic's key then)."""

    __tablename__ = "dlp_token_vault"
    # An HR erasure shreds the erased employee's rows (`projections.store`); a reveal
    # looks a token up.
    __table_args__ = (
        Index("ix_dlp_token_vault_origin_subject", "origin", "subject"),
        Index("ix_dlp_token_vault_token", "token"),
    )

    vault_key: Mapped[str] = mapped_column(Text, primary_key=True, doc="The topic's key")
    token: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(Text)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, doc="X25519 + AES-256-GCM sealed value")
    key_id: Mapped[str] = mapped_column(String(16), doc="Which vault key the value is sealed to")
    event_id: Mapped[str] = mapped_column(Text, doc="The latest event the token came from")
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Whose value it is, as the entry's CloudEvents headers tell (empty on rows written
    # before revision 0008): the processor flow that tokenized it, and the event's subject.
    origin: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)


class DlpVaultTombstone(Base):
    """Outbox of the token vault's tombstones: each vault key (`DlpVaultEntry.vault_key`)
    an HR erasure took out of the vault, written in the erasure's transaction and removed
    once the projection worker has published a tombstone for it on ``crm.dlp.vault.v1``,
    so the compacted topic drops the erased employee's sealed values too. A key only:
    never a value, nor whose it was in clear."""

    __tablename__ = "dlp_vault_tombstones"

    vault_key: Mapped[str] = mapped_column(Text, primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DlpVaultReveal(Base):
    """Insert-only access log of the token vault: one row per reveal attempt, whatever its
    outcome (revealed, role-denied, unknown-token, key-mismatch). Never the value. A signed
    hash chain in ``seq`` order (`projections.access_log`); the link columns are empty only
    on rows written before revision 0007."""

    __tablename__ = "dlp_vault_reveals"
    # One row may follow a given row: of two concurrent reveals, the second to commit
    # fails here and retries after the first.
    __table_args__ = (UniqueConstraint("prev_hash"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(Text)
    entity: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProjectionOffset(Base):
    """Next offset to read, per projection and partition; written with the batch's rows."""

    __tablename__ = "projection_offsets"

    projection: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
