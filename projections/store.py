"""Apply batches of decoded events to the read model and the audit trail.

One database transaction per batch writes, in order: the new audit links (events whose id
is already in the audit log are skipped, so applying a batch twice has no effect), the lead
upserts and quarantine rows, then the projection's next offsets. Rows are built as plain
tuples and written with one bulk statement (or COPY) per table and batch
(``projections.bulk``); never row-by-row ORM objects.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    TextClause,
    bindparam,
    func,
    select,
    text,
    tuple_,
)

from hub.events import EventMeta, deterministic_id, processor_source
from hub.topics import (
    CLEAN_HR_EMPLOYEES,
    CLEAN_HR_ERASURES,
    CLEAN_MARKETING_CONTACTS,
    CLEAN_MARKETING_EMAIL_EVENTS,
    CLEAN_SALES_LEADS,
    CLEAN_SERVICE_TICKETS,
    DLP_VAULT,
    QUARANTINE,
    QUARANTINE_REDRIVES,
)
from projections.audit import GENESIS_HASH, LinkSigner, canonical_time, chain_prefix, hash_link, utc
from projections.bulk import OnConflict, Row, TableRows, writer_for
from projections.models import (
    AttributionTouch,
    AuditEntry,
    DlpVaultEntry,
    DlpVaultTombstone,
    HrEmployee,
    HrErasure,
    Lead,
    MarketingContact,
    ProjectionOffset,
    QuarantineReason,
    QuarantineRedrive,
    QuarantineRow,
    ServiceCase,
)

log = logging.getLogger(__name__)

AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
LEADS: Table = Lead.__table__  # type: ignore[assignment]
QROWS: Table = QuarantineRow.__table__  # type: ignore[assignment]
QREASONS: Table = QuarantineReason.__table__  # type: ignore[assignment]
OFFSETS: Table = ProjectionOffset.__table__  # type: ignore[assignment]
REDRIVES: Table = QuarantineRedrive.__table__  # type: ignore[assignment]
CONTACTS: Table = MarketingContact.__table__  # type: ignore[assignment]
CASES: Table = ServiceCase.__table__  # type: ignore[assignment]
EMPLOYEES: Table = HrEmployee.__table__  # type: ignore[assignment]
ERASURES: Table = HrErasure.__table__  # type: ignore[assignment]
TOUCHES: Table = AttributionTouch.__table__  # type: ignore[assignment]
VAULT: Table = DlpVaultEntry.__table__  # type: ignore[assignment]
TOMBSTONES: Table = DlpVaultTombstone.__table__  # type: ignore[assignment]

LINEAGE = ("last_event_id", "source_topic", "source_partition", "source_offset", "updated_at")
NEWER = ("source_partition", "source_offset")

# Service case fields copied from the event value as they are.
CASE_FIELDS = (
    "subject",
    "description",
    "status",
    "case_status",
    "case_status_policy",
    "priority",
    "ticket_type",
    "requester_id",
    "assignee_id",
    "organization_id",
    "channel",
)
CASE_UPDATE = (*CASE_FIELDS, "created_at", "source_updated_at", "generated_timestamp", *LINEAGE)
CASE_COLUMNS = ("ticket_id", *CASE_UPDATE)
CASE_CONFLICT = OnConflict(("ticket_id",), CASE_UPDATE, NEWER)

# Employee fields copied as they are; then the two dates (ISO text in the event).
EMPLOYEE_FIELDS = (
    "employee_number",
    "first_name",
    "last_name",
    "preferred_name",
    "work_email",
    "work_phone",
    "job_title",
    "department",
    "division",
    "location",
    "employment_status",
)
EMPLOYEE_UPDATE = (
    *EMPLOYEE_FIELDS,
    "hire_date",
    "termination_date",
    "supervisor_id",
    "source_system",
    *LINEAGE,
)
EMPLOYEE_COLUMNS = ("employee_id", *EMPLOYEE_UPDATE)
EMPLOYEE_CONFLICT = OnConflict(("employee_id",), EMPLOYEE_UPDATE, NEWER)
ERASURE_COLUMNS = ("employee_id", "erased_at", "source_system", "last_event_id", "updated_at")
# The first erasure stays: a re-delivered or repeated one changes nothing.
ERASURE_CONFLICT = OnConflict(("employee_id",))
VAULT_FIELDS = ("token", "entity", "sealed", "key_id", "event_id", "sealed_at", "origin", "subject")
VAULT_UPDATE = (*VAULT_FIELDS, *LINEAGE)
VAULT_COLUMNS = ("vault_key", *VAULT_UPDATE)
# A key's latest entry wins, as on the compacted topic (an older re-delivery loses).
VAULT_CONFLICT = OnConflict(("vault_key",), VAULT_UPDATE, NEWER)
# The chain whose vault entries an HR erasure shreds: its employees' values.
HR_EMPLOYEE_ORIGIN = processor_source("hr-employees")
# The outbox of tombstones for their vault keys: a key queued again is one row, queued anew
# (a round read before that leaves it queued: `tombstones_published`).
TOMBSTONE_CONFLICT = OnConflict(("vault_key",), ("queued_at",))

# One batch at a time per read model (keyed on its offsets table, so one lock per schema
# whatever the search path and role), held to the batch's commit. Under PostgreSQL's READ
# COMMITTED two workers' batches (a consumer group splits the partitions) would each
# decide on what the other has not committed yet, wherever one topic's rows depend on
# another's: an employee's change (or vault entry) applied beside their erasure brought
# the row back; a quarantine row beside its re-drive stayed open. The lock holds only under
# READ COMMITTED, which apply() therefore sets (`ProjectionStore._apply_engine`). SQLite
# serialises writers itself (a write after a stale read fails, and the worker retries).
_APPLY_LOCK = text(
    "SELECT pg_advisory_xact_lock((1129465160::bigint << 32)"
    " | CAST(CAST(CAST(:offsets AS regclass) AS oid) AS bigint))"
)

# Attribution: which e-mail events are touches (an engagement, not a send or a bounce).
TOUCH_EVENT_TYPES = frozenset({"OPEN", "CLICK"})
EMAIL_CHANNEL = "marketing-email"
TOUCH_UPDATE = ("person", "campaign", "channel", "touch_type", "touched_at", *LINEAGE)
TOUCH_COLUMNS = ("touch_id", *TOUCH_UPDATE)
TOUCH_CONFLICT = OnConflict(("touch_id",), TOUCH_UPDATE, NEWER)

# Marketing contact fields copied from the event value as they are.
CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "lifecycle_stage",
    "lead_status",
    "city",
    "country",
    "email_optout",
)
CONTACT_UPDATE = (
    *CONTACT_FIELDS,
    "archived",
    "source_updated_at",
    "last_event_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "updated_at",
)
CONTACT_COLUMNS = ("contact_id", *CONTACT_UPDATE)
CONTACT_CONFLICT = OnConflict(
    ("contact_id",), CONTACT_UPDATE, ("source_partition", "source_offset")
)

# Lead fields copied from the event value: text, then created_on (a date), then text.
LEAD_TEXT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone_e164",
    "phone_display",
    "company",
    "job_title",
    "country",
    "lead_source",
    "lead_status",
)
LEAD_TAIL_FIELDS = ("owner", "notes")
LEAD_FIELDS = (*LEAD_TEXT_FIELDS, "created_on", *LEAD_TAIL_FIELDS)
QUARANTINE_FIELDS = (
    "quarantine_id",
    "stage",
    "department",
    "connector",
    "source_file",
    "source_row",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_event_id",
    "entity_id",
    "policy_version",
    "payload_format",
)
LEAD_UPDATE = (
    *LEAD_FIELDS,
    "person",  # the case-folded address: the key attribution joins departments on
    "last_event_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "updated_at",
)
# The order of the values in the row tuples built below (tests check them against the
# tables).
AUDIT_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "event_id",
    "event_type",
    "subject",
    "event_time",
    "payload_digest",
    "prev_hash",
    "hash",
    "signature",
)
LEAD_COLUMNS = ("lead_id", *LEAD_UPDATE)
QUARANTINE_COLUMNS = (
    "event_id",
    *QUARANTINE_FIELDS,
    "reasons",
    "quarantined_at",
    "status",
    "topic",
    "partition",
    "offset",
)
REASON_COLUMNS = ("event_id", "position", "rule_id", "field")
REDRIVE_FIELDS = (
    "redrive_id",
    "quarantine_id",
    "quarantine_event_id",
    "stage",
    "action",
    "target",
    "attempt",
    "rule_id",
    "requested_by",
)
REDRIVE_COLUMNS = (*REDRIVE_FIELDS, "requested_at", "event_id")
OFFSET_COLUMNS = ("projection", "topic", "partition", "next_offset")

LEAD_CONFLICT = OnConflict(("lead_id",), LEAD_UPDATE, ("source_partition", "source_offset"))
QUARANTINE_CONFLICT = OnConflict(("event_id",))
REASON_CONFLICT = OnConflict(("event_id", "position"))
REDRIVE_CONFLICT = OnConflict(("redrive_id",))
REDRIVEN = "redriven"
OFFSET_CONFLICT = OnConflict(
    ("projection", "topic", "partition"), ("next_offset",), ("next_offset",)
)
DECODE_STAGE = "decode"


class ProjectionTopics(NamedTuple):
    """Which topic feeds which table."""

    leads: str = CLEAN_SALES_LEADS
    quarantine: str = QUARANTINE
    redrives: str = QUARANTINE_REDRIVES
    contacts: str = CLEAN_MARKETING_CONTACTS
    cases: str = CLEAN_SERVICE_TICKETS
    employees: str = CLEAN_HR_EMPLOYEES
    erasures: str = CLEAN_HR_ERASURES
    email_events: str = CLEAN_MARKETING_EMAIL_EVENTS
    vault: str = DLP_VAULT


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """One decoded message."""

    topic: str
    partition: int
    offset: int
    key: str | None
    meta: EventMeta
    value: dict[str, Any]
    raw_value: bytes


@dataclass(frozen=True, slots=True)
class UndecodableEvent:
    """A message that could not be read (no CloudEvents headers, not wire format, unknown
    schema id). It becomes a quarantine row with stage ``decode``; the offset advances.
    ``message`` must be safe to show (never the value)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    rule_id: str
    message: str
    event_id: str | None = None
    stage: str = "decode"  # "projection": read fine, but the database refused its values

    @property
    def quarantine_event_id(self) -> str:
        return deterministic_id("decode", self.topic, str(self.partition), str(self.offset))


class TombstoneRound(NamedTuple):
    """Vault keys read off the tombstone outbox (`ProjectionStore.queued_tombstones`)."""

    publish: list[str]  # those that need a tombstone
    keys: list[str]  # all of them: off the queue once the tombstones are published
    queued_at: dict[str, datetime]  # when each was queued, as read


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A record of the token vault's compacted topic with a key and no value: Kafka's way
    to delete a key (compaction drops the key's older records, then the tombstone itself).
    The projection deletes the key's row (`hub.dlp.vault.entry_key`: a token and its
    owner) if it came from before the tombstone, so the live vault equals one rebuilt from
    the compacted topic."""

    topic: str
    partition: int
    offset: int
    key: str


Item = ConsumedEvent | UndecodableEvent | Tombstone
Position = tuple[str, int]
_position = attrgetter("topic", "partition", "offset")
_chain = attrgetter("topic", "partition")


@dataclass(frozen=True, slots=True)
class ApplyResult:
    received: int = 0
    audited: int = 0
    skipped: int = 0  # already audited (duplicate event id) or behind the chain head
    leads: int = 0
    contacts: int = 0
    cases: int = 0
    employees: int = 0
    erasures: int = 0
    touches: int = 0
    vaulted: int = 0  # vault keys (token and owner) new to the vault or re-sent
    quarantined: int = 0
    redrives: int = 0
    undecodable: int = 0
    positions: dict[Position, int] = field(default_factory=dict)
    tombstones: int = 0  # token vault keys deleted on the topic
    tombstones_queued: int = 0  # erased employees' vault keys queued for a tombstone
    # (topic, outcome) -> count; outcome is applied, skipped, undecodable or tombstone
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)


LEAD_KEY = itemgetter("lead_id")
CONTACT_KEY = itemgetter("contact_id")
CASE_KEY = itemgetter("ticket_id")
EMPLOYEE_KEY = itemgetter("employee_id")


def _touch_id(v: dict[str, Any]) -> str:
    return f"email:{v['event_id']}"


def _is_touch(v: dict[str, Any]) -> bool:
    """An engagement with a campaign e-mail (not a send or a bounce) by a known address."""
    return v["type"] in TOUCH_EVENT_TYPES and bool(v.get("recipient"))


def _latest(
    events: Sequence[ConsumedEvent],
    key_of: Callable[[dict[str, Any]], Any],
    values: Callable[[dict[str, Any]], Row],
    times: dict[datetime, tuple[str, Any]],
) -> list[Row]:
    """One row per entity: its last event of the batch (events are sorted by position,
    and an entity's events share a partition: its id is the key), as the key, ``values``,
    then the lineage of that event (event id, topic, partition, offset, event time)."""
    latest: dict[Any, Row] = {}
    for e in events:
        v = e.value
        key = key_of(v)
        latest[key] = (key, *values(v), *_lineage(e, times))
    return list(latest.values())


def _lineage(e: ConsumedEvent, times: dict[datetime, tuple[str, Any]]) -> Row:
    """The `LINEAGE` columns of a row from `e`."""
    return (e.meta.id, e.topic, e.partition, e.offset, times[e.meta.time][1])


def _iso_date(text: str | None) -> date | None:
    """An HR date (the connector checked it is ISO-8601 YYYY-MM-DD)."""
    return None if not text else date.fromisoformat(text)


def _iso_time(text: str) -> datetime:
    """An ISO-8601 UTC time as the sources write it (``...Z``), as an aware datetime."""
    return utc(datetime.fromisoformat(text))


def _now() -> datetime:
    return datetime.now(UTC)


class ProjectionStore:
    """The read model and audit trail of one projection in one database."""

    def __init__(
        self,
        engine: Engine,
        *,
        audit_key: bytes,
        projection: str = "crm",
        topics: ProjectionTopics = ProjectionTopics(),  # noqa: B008 - immutable tuple
    ) -> None:
        if not audit_key:
            raise ValueError("audit_key must not be empty")
        self.engine = engine
        # apply()'s transactions: READ COMMITTED on PostgreSQL whatever the server's
        # default, since only there does a statement after the read model's lock see the
        # batch that held it (under REPEATABLE READ the snapshot is the lock statement's,
        # taken before its wait, and an erased employee came back). The isolation is reset
        # when the connection goes back to the pool.
        self._apply_engine = (
            engine.execution_options(isolation_level="READ COMMITTED")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.projection = projection
        self.topics = topics
        self._signer = LinkSigner(audit_key)
        self._writer = writer_for(engine.dialect)
        self._heads_sql: dict[int, TextClause] = {}

    # -- writing ------------------------------------------------------------------------
    def apply(self, batch: Sequence[Item]) -> ApplyResult:
        """Apply ``batch`` in one transaction; idempotent by event id."""
        if not batch:
            return ApplyResult()
        items = sorted(batch, key=_position)
        events = [e for e in items if isinstance(e, ConsumedEvent)]
        undecodable = [e for e in items if isinstance(e, UndecodableEvent)]
        # (vault key, partition, offset): deleted on the topic, so from the vault (below)
        deleted = [
            (i.key, i.partition, i.offset)
            for i in items
            if isinstance(i, Tombstone) and i.topic == self.topics.vault
        ]
        positions: dict[Position, int] = {}
        for item in items:  # sorted: the last of a partition has its highest offset
            positions[(item.topic, item.partition)] = item.offset + 1

        w = self._writer
        with self._apply_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(_APPLY_LOCK, {"offsets": OFFSETS.name})
            fresh = self._fresh_events(conn, events)
            times = {t: (canonical_time(t), w.time(utc(t))) for t in {e.meta.time for e in fresh}}
            audit_rows, fresh = self._audit_rows(conn, fresh, times)
            by_topic: dict[str, list[ConsumedEvent]] = {}
            for e in fresh:
                by_topic.setdefault(e.topic, []).append(e)
            t = self.topics
            lead_rows = _latest(by_topic.get(t.leads, ()), LEAD_KEY, self._lead_values, times)
            contact_rows = _latest(
                by_topic.get(t.contacts, ()), CONTACT_KEY, self._contact_values, times
            )
            case_rows = _latest(by_topic.get(t.cases, ()), CASE_KEY, self._case_values, times)
            erasure_rows = self._erasure_rows(by_topic.get(t.erasures, ()), times)
            employee_rows = self._employee_rows(
                conn, by_topic.get(t.employees, ()), times, erasure_rows
            )
            touch_rows = _latest(
                [e for e in by_topic.get(t.email_events, ()) if _is_touch(e.value)],
                _touch_id,
                self._touch_values,
                times,
            )
            vault_rows, shredded = self._vault_rows(
                conn, by_topic.get(t.vault, ()), times, erasure_rows
            )
            redrive_rows = self._redrive_rows(by_topic.get(t.redrives, ()))
            q_rows, reason_rows = self._quarantine_rows(
                conn, by_topic.get(t.quarantine, []), undecodable, redrive_rows
            )
            offset_rows = [(self.projection, t, p, n) for (t, p), n in sorted(positions.items())]
            w.write(
                conn,
                (
                    TableRows(AUDIT, AUDIT_COLUMNS, audit_rows),
                    TableRows(LEADS, LEAD_COLUMNS, lead_rows, LEAD_CONFLICT),
                    TableRows(CONTACTS, CONTACT_COLUMNS, contact_rows, CONTACT_CONFLICT),
                    TableRows(CASES, CASE_COLUMNS, case_rows, CASE_CONFLICT),
                    TableRows(EMPLOYEES, EMPLOYEE_COLUMNS, employee_rows, EMPLOYEE_CONFLICT),
                    TableRows(ERASURES, ERASURE_COLUMNS, erasure_rows, ERASURE_CONFLICT),
                    TableRows(TOUCHES, TOUCH_COLUMNS, touch_rows, TOUCH_CONFLICT),
                    TableRows(VAULT, VAULT_COLUMNS, vault_rows, VAULT_CONFLICT),
                    TableRows(QROWS, QUARANTINE_COLUMNS, q_rows, QUARANTINE_CONFLICT),
                    TableRows(QREASONS, REASON_COLUMNS, reason_rows, REASON_CONFLICT),
                    TableRows(REDRIVES, REDRIVE_COLUMNS, redrive_rows, REDRIVE_CONFLICT),
                    TableRows(OFFSETS, OFFSET_COLUMNS, offset_rows, OFFSET_CONFLICT),
                ),
            )
            # Keys whose erased employee's entry leaves the vault: the topic gets a
            # tombstone for each (`queued_tombstones`), so compaction drops the entry too.
            erased_keys = [key for key, _, _ in shredded]
            if erasure_rows:
                # Right to erasure: the employee's row goes, in the same transaction that
                # records the erasure (later events for the id are dropped: _employee_rows),
                # and so do the sealed values the vault holds from the employee's events
                # (later entries are shredded: _vault_rows).
                erased = sorted({r[0] for r in erasure_rows})
                conn.execute(EMPLOYEES.delete().where(EMPLOYEES.c.employee_id.in_(erased)))
                theirs = (VAULT.c.origin == HR_EMPLOYEE_ORIGIN, VAULT.c.subject.in_(erased))
                erased_keys += conn.scalars(select(VAULT.c.vault_key).where(*theirs))
                conn.execute(VAULT.delete().where(*theirs))
            for key, partition, offset in [*shredded, *deleted]:
                # An erased employee's entry is the key's latest, or the key was deleted on
                # the topic: no value for it from before stays (a row from an older entry
                # included), as compaction leaves the topic. A later entry stays. (A key's
                # entries are all on one partition.)
                conn.execute(
                    VAULT.delete().where(
                        VAULT.c.vault_key == key,
                        tuple_(VAULT.c.source_partition, VAULT.c.source_offset)
                        < tuple_(partition, offset),
                    )
                )
            if erased_keys:
                queued = w.time(datetime.now(UTC))
                rows = [(key, queued) for key in sorted(set(erased_keys))]
                columns = ("vault_key", "queued_at")
                w.write(conn, (TableRows(TOMBSTONES, columns, rows, TOMBSTONE_CONFLICT),))
            if redrive_rows:
                # A quarantine row already in the read model: re-driven now. (One that
                # arrives later is written re-driven: _quarantine_rows.)
                conn.execute(
                    QROWS.update()
                    .where(QROWS.c.quarantine_id.in_(sorted({r[1] for r in redrive_rows})))
                    .values(status=REDRIVEN)
                )
        outcomes: dict[tuple[str, str], int] = {}
        applied_ids = {id(e) for e in fresh}
        for item in items:
            if isinstance(item, UndecodableEvent):
                outcome = "undecodable"
            elif isinstance(item, Tombstone):
                outcome = "tombstone"
            else:
                outcome = "applied" if id(item) in applied_ids else "skipped"
            outcomes[(item.topic, outcome)] = outcomes.get((item.topic, outcome), 0) + 1
        return ApplyResult(
            received=len(batch),
            audited=len(audit_rows),
            skipped=len(events) - len(fresh),
            leads=len(lead_rows),
            contacts=len(contact_rows),
            cases=len(case_rows),
            employees=len(employee_rows),
            erasures=len(erasure_rows),
            touches=len(touch_rows),
            vaulted=len(vault_rows),
            quarantined=len(by_topic.get(self.topics.quarantine, ())),
            redrives=len(redrive_rows),
            undecodable=len(undecodable),
            tombstones=len(deleted),
            tombstones_queued=len(set(erased_keys)),
            positions=positions,
            outcomes=outcomes,
        )

    def _fresh_events(self, conn: Connection, events: list[ConsumedEvent]) -> list[ConsumedEvent]:
        """Events whose id is neither in the audit log nor earlier in this batch."""
        ids = list(dict.fromkeys(e.meta.id for e in events))
        seen = self._writer.existing(conn, AUDIT, "event_id", ids)
        fresh: list[ConsumedEvent] = []
        for e in events:
            if e.meta.id in seen:
                continue
            seen.add(e.meta.id)
            fresh.append(e)
        return fresh

    def _chain_heads(
        self, conn: Connection, positions: list[Position]
    ) -> dict[Position, tuple[int, str]]:
        """Last link (offset, hash) of each chain, one indexed lookup per partition, one query."""
        if not positions:
            return {}
        params: dict[str, Any] = {}
        for i, (topic, partition) in enumerate(positions):
            params[f"t{i}"], params[f"p{i}"] = topic, partition
        rows = conn.execute(self._chain_heads_sql(len(positions)), params)
        return {positions[row.i]: (row.offset, row.hash) for row in rows}

    def _chain_heads_sql(self, n: int) -> TextClause:
        sql = self._heads_sql.get(n)
        if sql is None:
            q = self.engine.dialect.identifier_preparer.quote
            table, offset = q(AUDIT.name), q("offset")
            # Identifiers from the table metadata; values are bound parameters.
            sql = self._heads_sql[n] = text(
                " UNION ALL ".join(
                    f"SELECT {i} AS i, h{i}.{offset}, h{i}.hash FROM (SELECT {offset}, hash "  # noqa: S608
                    f"FROM {table} WHERE topic = :t{i} AND {q('partition')} = :p{i} "
                    f"ORDER BY {offset} DESC LIMIT 1) AS h{i}"
                    for i in range(n)
                )
            )
        return sql

    def _audit_rows(
        self,
        conn: Connection,
        fresh: list[ConsumedEvent],
        times: dict[datetime, tuple[str, Any]],
    ) -> tuple[list[Row], list[ConsumedEvent]]:
        """Chained, signed audit rows for ``fresh`` (sorted by position), and the events
        they cover."""
        positions = list(dict.fromkeys(_chain(e) for e in fresh))
        heads = self._chain_heads(conn, positions)
        sign = self._signer.sign
        sha256 = hashlib.sha256
        rows: list[Row] = []
        applied: list[ConsumedEvent] = []
        stale: list[ConsumedEvent] = []
        for (topic, partition), chain in itertools.groupby(fresh, key=_chain):
            last_offset, prev_hash = heads.get((topic, partition), (-1, GENESIS_HASH))
            prefix = chain_prefix(topic, partition)
            for e in chain:
                offset = e.offset
                if offset <= last_offset:
                    # Behind the chain head with an id never seen: the chain cannot take it
                    # without rewriting history. Only possible if offsets were reset by hand.
                    stale.append(e)
                    continue
                meta = e.meta
                canonical, db_time = times[meta.time]
                digest = sha256(e.raw_value).hexdigest()
                h = hash_link(
                    prev_hash, prefix, offset, meta.id, meta.type, meta.subject, canonical, digest
                )
                rows.append(
                    (
                        topic,
                        partition,
                        offset,
                        meta.id,
                        meta.type,
                        meta.subject,
                        db_time,
                        digest,
                        prev_hash,
                        h,
                        sign(h),
                    )
                )
                prev_hash, last_offset = h, offset
                applied.append(e)
        if stale:
            log.warning(
                "%d event(s) behind their audit chain head were not applied (first: %s[%d]@%d)",
                len(stale),
                stale[0].topic,
                stale[0].partition,
                stale[0].offset,
            )
        return rows, applied

    # -- per-table values (the row is the key, these, then the lineage: _latest) --------
    def _lead_values(self, v: dict[str, Any]) -> Row:
        get, email = v.get, v.get("email")
        return (
            *map(get, LEAD_TEXT_FIELDS),
            self._writer.date(get("created_on")),
            *map(get, LEAD_TAIL_FIELDS),
            email.casefold() if email else None,
        )

    def _contact_values(self, v: dict[str, Any]) -> Row:
        return (
            *map(v.get, CONTACT_FIELDS),
            bool(v.get("archived")),
            self._writer.time(utc(v["updated_at"])),
        )

    def _case_values(self, v: dict[str, Any]) -> Row:
        time = self._writer.time
        return (
            *map(v.get, CASE_FIELDS),
            time(_iso_time(v["created_at"])),
            time(_iso_time(v["updated_at"])),
            v["generated_timestamp"],
        )

    def _employee_values(self, v: dict[str, Any]) -> Row:
        to_date = self._writer.date
        return (
            *map(v.get, EMPLOYEE_FIELDS),
            to_date(_iso_date(v.get("hire_date"))),
            to_date(_iso_date(v.get("termination_date"))),
            v.get("supervisor_id"),
            v["source_system"],
        )

    def _touch_values(self, v: dict[str, Any]) -> Row:
        """An opened or clicked campaign e-mail. (A sales lead's touch is its row in
        ``leads``: the view ``attribution_all_touches`` reads it there.)"""
        return (
            v["recipient"].casefold(),
            f"email:{v.get('email_campaign_id') or 'unknown'}",
            EMAIL_CHANNEL,
            v["type"],
            self._writer.time(utc(v["created_at"])),
        )

    def _erasure_rows(
        self, events: Sequence[ConsumedEvent], times: dict[datetime, tuple[str, Any]]
    ) -> list[Row]:
        """One row per erased employee: the first erasure (a repeated one changes nothing)."""
        time = self._writer.time
        first: dict[str, Row] = {}
        for e in events:
            v = e.value
            first.setdefault(
                v["employee_id"],
                (
                    v["employee_id"],
                    time(_iso_time(v["erased_at"])),
                    v["source_system"],
                    e.meta.id,
                    times[e.meta.time][1],
                ),
            )
        return list(first.values())

    def _vault_rows(
        self,
        conn: Connection,
        events: Sequence[ConsumedEvent],
        times: dict[datetime, tuple[str, Any]],
        erasure_rows: list[Row],
    ) -> tuple[list[Row], list[tuple[str, int, int]]]:
        """One row per vault key — the topic's key: a token and whose value it is
        (`hub.dlp.vault.entry_key`; the bare token on entries from before) — from its
        latest entry of the batch (the one compaction keeps), with the entry's source and
        subject. A key whose latest entry came from an HR employee who is erased (in this
        batch or before) gets no row: it is shredded instead (key, partition, offset),
        whatever order the erasure and the entries are read in."""
        latest: dict[str, ConsumedEvent] = {}
        for e in events:
            latest[e.key or e.value["token"]] = e
        if not latest:
            return [], []
        erased = {r[0] for r in erasure_rows}
        hr = [e.meta.subject for e in latest.values() if e.meta.source == HR_EMPLOYEE_ORIGIN]
        if hr:
            erased |= self._writer.existing(conn, ERASURES, "employee_id", hr)
        time = self._writer.time
        rows: list[Row] = []
        shredded: list[tuple[str, int, int]] = []
        for key, e in latest.items():
            if e.meta.source == HR_EMPLOYEE_ORIGIN and e.meta.subject in erased:
                shredded.append((key, e.partition, e.offset))
                continue
            v = e.value
            sealed_at = time(utc(v["sealed_at"]))
            fields = (v["token"], v["entity"], v["sealed"], v["key_id"], v["event_id"], sealed_at)
            rows.append((key, *fields, e.meta.source, e.meta.subject, *_lineage(e, times)))
        return rows, shredded

    def _employee_rows(
        self,
        conn: Connection,
        events: Sequence[ConsumedEvent],
        times: dict[datetime, tuple[str, Any]],
        erasure_rows: list[Row],
    ) -> list[Row]:
        """One row per employee: its last event of the batch, unless the employee was
        erased (in this batch or before): erasure is final, whatever order the two topics
        are read in and however often a change is re-delivered."""
        rows = _latest(events, EMPLOYEE_KEY, self._employee_values, times)
        if not rows:
            return []
        erased = {r[0] for r in erasure_rows}
        erased |= self._writer.existing(conn, ERASURES, "employee_id", [r[0] for r in rows])
        return [row for row in rows if row[0] not in erased]

    def _redrive_rows(self, events: Sequence[ConsumedEvent]) -> list[Row]:
        w = self._writer
        return [
            (*map(e.value.get, REDRIVE_FIELDS), w.time(utc(e.value["requested_at"])), e.meta.id)
            for e in events
        ]

    def _quarantine_rows(
        self,
        conn: Connection,
        records: list[ConsumedEvent],
        undecodable: list[UndecodableEvent],
        redrive_rows: list[Row],
    ) -> tuple[list[Row], list[Row]]:
        """Quarantine rows and their reasons. A row whose re-drive the projection has
        already seen (topics are consumed at their own pace, and a replay into an empty
        database may meet the re-drive first) is written re-driven."""
        w = self._writer
        rows: list[Row] = []
        reasons: list[Row] = []
        redriven = {r[1] for r in redrive_rows}
        ids = [str(e.value["quarantine_id"]) for e in records if e.value["quarantine_id"]]
        if ids:
            redriven |= self._writer.existing(conn, REDRIVES, "quarantine_id", ids)
        for e in records:
            v = e.value
            reason_list = [
                {"rule_id": r["rule_id"], "field": r.get("field"), "message": r["message"]}
                for r in v.get("reasons") or ()
            ]
            rows.append(
                (
                    e.meta.id,
                    *map(v.get, QUARANTINE_FIELDS),
                    w.json(reason_list),
                    w.time(utc(v.get("quarantined_at") or e.meta.time)),
                    REDRIVEN if v.get("quarantine_id") in redriven else "open",
                    e.topic,
                    e.partition,
                    e.offset,
                )
            )
            reasons.extend(
                (e.meta.id, i, r["rule_id"], r["field"]) for i, r in enumerate(reason_list)
            )
        now = w.time(_now())
        for u in undecodable:
            event_id = u.quarantine_event_id
            message = [{"rule_id": u.rule_id, "field": None, "message": u.message}]
            q = dict.fromkeys(QUARANTINE_FIELDS)
            q.update(
                quarantine_id=event_id,
                stage=u.stage,
                source_topic=u.topic,
                source_partition=u.partition,
                source_offset=u.offset,
                source_event_id=u.event_id,
                entity_id=u.key,
            )
            rows.append(
                (
                    event_id,
                    *q.values(),
                    w.json(message),
                    now,
                    "open",
                    u.topic,
                    u.partition,
                    u.offset,
                )
            )
            reasons.append((event_id, 0, u.rule_id, None))
        return rows, reasons

    # -- reading ------------------------------------------------------------------------
    def positions(self) -> dict[Position, int]:
        """Next offset to read per (topic, partition) for this projection."""
        o = OFFSETS.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(o.topic, o.partition, o.next_offset).where(o.projection == self.projection)
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    def attribution_by_campaign(self) -> list[dict[str, Any]]:
        """The ``attribution_by_campaign`` view: per campaign, its touches, the people it
        touched, and the first-touch and last-touch credit (people it touched first /
        last), most first-touch credit first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT campaign, channel, touches, contacts, first_touch_contacts, "
                    "last_touch_contacts FROM attribution_by_campaign "
                    "ORDER BY first_touch_contacts DESC, last_touch_contacts DESC, campaign"
                )
            )
            return [dict(r._mapping) for r in rows]

    def attribution_of(self, address: str) -> dict[str, Any] | None:
        """The ``attribution_by_contact`` row of one person (by e-mail address)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT * FROM attribution_by_contact WHERE person = :person"),
                {"person": address.casefold()},
            ).first()
            return None if row is None else dict(row._mapping)

    # -- the vault's tombstones ----------------------------------------------------------
    def queued_tombstones(self, limit: int) -> TombstoneRound:
        """Up to `limit` vault keys of the tombstone outbox, oldest first. A key the vault
        holds again — vaulted since from a newer entry, as for a key of the bare token
        (entries from before keys named their owner) someone else's value took — needs no
        tombstone: the newer entry is the key's latest on the topic, and compaction drops
        the erased one behind it. Take the round off with `tombstones_published` once the
        broker has its tombstones."""
        t, v = TOMBSTONES.c, VAULT.c
        query = (
            select(t.vault_key, v.vault_key.is_(None), t.queued_at)
            .select_from(TOMBSTONES.outerjoin(VAULT, v.vault_key == t.vault_key))
            .order_by(t.queued_at, t.vault_key)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return TombstoneRound(
            [key for key, gone, _ in rows if gone],
            [key for key, _, _ in rows],
            {key: at for key, _, at in rows},
        )

    def tombstones_published(self, round_: TombstoneRound) -> None:
        """Take a round's keys off the tombstone outbox, except those queued again since
        it was read (a later entry of the erased employee, shredded meanwhile: its
        tombstone is still to come). Queued again is a queue time other than the one read
        — not a later one, so a wall clock set back between the two cannot pass a new
        queueing off as the old one."""
        if round_.keys:
            t = TOMBSTONES.c
            delete = TOMBSTONES.delete().where(
                t.vault_key == bindparam("queued_key"), t.queued_at == bindparam("read_at")
            )
            with self.engine.begin() as conn:
                params = [{"queued_key": k, "read_at": round_.queued_at[k]} for k in round_.keys]
                conn.execute(delete, params)

    def counts(self) -> dict[str, Any]:
        """Sizes for the demo and the status page."""
        q = QROWS.c
        with self.engine.connect() as conn:
            leads = conn.scalar(select(func.count()).select_from(LEADS)) or 0
            contacts = conn.scalar(select(func.count()).select_from(CONTACTS)) or 0
            cases = conn.scalar(select(func.count()).select_from(CASES)) or 0
            employees = conn.scalar(select(func.count()).select_from(EMPLOYEES)) or 0
            erasures = conn.scalar(select(func.count()).select_from(ERASURES)) or 0
            touches = conn.scalar(text("SELECT count(*) FROM attribution_all_touches")) or 0
            audit = conn.scalar(select(func.count()).select_from(AUDIT)) or 0
            vault_rows = conn.scalar(select(func.count()).select_from(VAULT)) or 0
            vaulted = conn.scalar(select(func.count(VAULT.c.token.distinct()))) or 0
            by_stage = {
                r.stage: r.n
                for r in conn.execute(
                    select(q.stage, func.count().label("n")).group_by(q.stage).order_by(q.stage)
                )
            }
            r_ = QREASONS.c
            by_rule = {
                r.rule_id: r.n
                for r in conn.execute(
                    select(r_.rule_id, func.count().label("n"))
                    .group_by(r_.rule_id)
                    .order_by(r_.rule_id)
                )
            }
        return {
            "leads": leads,
            "marketing_contacts": contacts,
            "service_cases": cases,
            "hr_employees": employees,
            "hr_erasures": erasures,
            "attribution_touches": touches,
            "quarantine": sum(by_stage.values()),
            "quarantine_by_stage": by_stage,
            "quarantine_by_rule": by_rule,
            "audit_entries": audit,
            "vault_rows": vault_rows,  # one per token and owner (the topic's keys)
            "vault_tokens": vaulted,
        }
