"""ProjectionStore and verify_chain against real databases: SQLite always, PostgreSQL when
HUB_TEST_DATABASE_URL is set (each test gets its own PostgreSQL schema, dropped after)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Table, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError

from hub.events import EventMeta, deterministic_id
from hub.topics import (
    CLEAN_HR_EMPLOYEES,
    CLEAN_HR_ERASURES,
    CLEAN_MARKETING_CONTACTS,
    CLEAN_MARKETING_EMAIL_EVENTS,
    CLEAN_SALES_LEADS,
    CLEAN_SERVICE_TICKETS,
    QUARANTINE,
)
from projections import store as store_module
from projections.audit import utc, verify_chain
from projections.bulk import POSTGRES_ROWS_INSERTED, SQLITE_ROWS_PER_STATEMENT
from projections.db import make_engine, migrate
from projections.models import (
    AuditEntry,
    Base,
    HrEmployee,
    HrErasure,
    Lead,
    MarketingContact,
    ProjectionOffset,
    QuarantineReason,
    QuarantineRow,
    ServiceCase,
)
from projections.store import ConsumedEvent, Item, ProjectionStore, UndecodableEvent

pytestmark = pytest.mark.integration

KEY = b"integration-audit-key"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("HUB_TEST_DATABASE_URL") else [])


@contextmanager
def fresh_database(
    backend: str, database_urls: list[str], tmp_path: Path, *, migrated: bool = True
) -> Iterator[str]:
    """An empty database of ``backend`` (migrated to head unless told otherwise); its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        if migrated:
            migrate(url)
        yield url
        return
    base = next(u for u in database_urls if u.startswith("postgres"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        if migrated:
            migrate(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, database_urls: list[str], tmp_path: Path
) -> Iterator[str]:
    with fresh_database(request.param, database_urls, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> ProjectionStore:
    return ProjectionStore(engine, audit_key=KEY)


# -- event builders ------------------------------------------------------------------------
def lead_event(
    lead: int, version: int, partition: int, offset: int, *, topic: str = CLEAN_SALES_LEADS
) -> ConsumedEvent:
    lead_id = f"L-{lead:04d}"
    value: dict[str, Any] = {
        "lead_id": lead_id,
        "first_name": f"First{lead}",
        "last_name": "Example",
        "email": f"lead{lead}@example.com",
        "phone_e164": "+14155550100",
        "phone_display": "+1-415-555-0100",
        "company": f"Company v{version}",
        "job_title": "CTO",
        "country": "US",
        "lead_source": "web",
        "lead_status": f"status-{version}",
        "created_on": date(2024, 1, 1) + timedelta(days=lead),
        "owner": "rep",
        "notes": None,
    }
    raw = f"{lead_id}:{version}".encode()
    meta = EventMeta(
        id=deterministic_id("lead", lead_id, str(version)),
        source="test/spreadsheet",
        type="crm.sales.lead.validated.v1",
        subject=lead_id,
        time=T0 + timedelta(minutes=version, seconds=lead),
    )
    return ConsumedEvent(topic, partition, offset, lead_id, meta, value, raw)


def quarantine_event(n: int, partition: int, offset: int, rules: Sequence[str]) -> ConsumedEvent:
    value: dict[str, Any] = {
        "quarantine_id": f"Q-{n}",
        "stage": "validation" if n % 2 else "connector",
        "department": "sales",
        "connector": "spreadsheet",
        "source_file": "leads.xlsx",
        "source_row": n + 2,
        "source_topic": "crm.raw.sales.leads.v1",
        "source_partition": 0,
        "source_offset": n,
        "source_event_id": f"raw-{n}",
        "entity_id": f"L-{n:04d}",
        "reasons": [{"rule_id": r, "field": "email", "message": "is not valid"} for r in rules],
        "policy_version": "7",
        "payload_format": "json",
        "payload": b'{"email": "secret@example.com"}',
        "quarantined_at": T0 + timedelta(seconds=n),
    }
    meta = EventMeta(
        id=deterministic_id("quarantine", str(n)),
        source="test/validation",
        type="crm.quarantine.v1",
        subject=f"L-{n:04d}",
        time=T0,
    )
    return ConsumedEvent(QUARANTINE, partition, offset, f"L-{n:04d}", meta, value, b"q%d" % n)


def sample_events() -> list[ConsumedEvent]:
    """12 leads on 3 partitions, each written 3 times (versions 0..2), plus 5 quarantine
    events on 2 partitions; offsets contiguous per partition, in log order."""
    offsets: dict[tuple[str, int], int] = {}
    events: list[ConsumedEvent] = []

    def next_offset(topic: str, partition: int) -> int:
        off = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = off + 1
        return off

    for version in range(3):
        for lead in range(12):
            p = lead % 3
            events.append(lead_event(lead, version, p, next_offset(CLEAN_SALES_LEADS, p)))
    for n in range(5):
        p = n % 2
        rules = ["email.syntax"] if n < 3 else ["email.syntax", "phone.parse"]
        events.append(quarantine_event(n, p, next_offset(QUARANTINE, p), rules))
    return events


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without surrogate keys, in a stable order."""
    a = AuditEntry.__table__.c
    with engine.connect() as conn:
        return {
            "leads": [tuple(r) for r in conn.execute(select(Lead).order_by(Lead.lead_id))],
            "quarantine": [
                tuple(r)
                for r in conn.execute(select(QuarantineRow).order_by(QuarantineRow.event_id))
            ],
            "audit": [
                tuple(r)
                for r in conn.execute(
                    select(*[c for c in a if c.name != "seq"]).order_by(
                        a.topic, a.partition, a.offset
                    )
                )
            ],
            "offsets": [
                tuple(r)
                for r in conn.execute(
                    select(ProjectionOffset).order_by(
                        ProjectionOffset.topic, ProjectionOffset.partition
                    )
                )
            ],
        }


def apply_in_batches(store: ProjectionStore, items: Sequence[Item], size: int) -> None:
    for start in range(0, len(items), size):
        store.apply(items[start : start + size])


# -- tests ---------------------------------------------------------------------------------
def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_migrate_twice_is_harmless(db_url: str) -> None:
    migrate(db_url)
    eng = make_engine(db_url)
    with eng.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0010"
    eng.dispose()


def test_apply_writes_rows_audit_and_offsets(store: ProjectionStore, engine: Engine) -> None:
    events = sample_events()
    result = store.apply(events)

    assert result.received == len(events) == 41
    assert result.audited == 41
    assert result.skipped == 0
    assert result.leads == 12
    assert result.quarantined == 5
    counts = store.counts()
    assert counts == {
        "leads": 12,
        "marketing_contacts": 0,
        "service_cases": 0,
        "hr_employees": 0,
        "hr_erasures": 0,
        "attribution_touches": 12,  # every lead has an address and a source
        "quarantine": 5,
        "quarantine_by_stage": {"connector": 3, "validation": 2},
        "quarantine_by_rule": {"email.syntax": 5, "phone.parse": 2},
        "audit_entries": 41,
        "vault_rows": 0,
        "vault_tokens": 0,
    }
    assert store.positions() == {
        (CLEAN_SALES_LEADS, 0): 12,
        (CLEAN_SALES_LEADS, 1): 12,
        (CLEAN_SALES_LEADS, 2): 12,
        (QUARANTINE, 0): 3,
        (QUARANTINE, 1): 2,
    }
    with engine.connect() as conn:
        lead = conn.execute(select(Lead).where(Lead.lead_id == "L-0004")).one()
        audit = conn.execute(
            select(AuditEntry).where(AuditEntry.event_id == events[0].meta.id)
        ).one()
        q = conn.execute(select(QuarantineRow).where(QuarantineRow.quarantine_id == "Q-3")).one()
    # The latest version of the lead, with its lineage.
    assert lead.company == "Company v2"
    assert lead.created_on == date(2024, 1, 5)
    assert lead.source_partition == 1
    assert lead.source_offset == 2 * 4 + 1
    assert lead.last_event_id == deterministic_id("lead", "L-0004", "2")
    assert lead.updated_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=2, seconds=4)
    # The audit row of the first event.
    assert audit.prev_hash == "0" * 64
    assert audit.payload_digest == hashlib.sha256(events[0].raw_value).hexdigest()
    assert (audit.topic, audit.partition, audit.offset) == (CLEAN_SALES_LEADS, 0, 0)
    assert audit.subject == "L-0000"
    # The quarantine row: reasons as JSON, status open, no payload column.
    assert q.stage == "validation"
    assert q.status == "open"
    assert q.reasons == [
        {"rule_id": "email.syntax", "field": "email", "message": "is not valid"},
        {"rule_id": "phone.parse", "field": "email", "message": "is not valid"},
    ]
    assert q.source_row == 5
    assert "payload" not in QuarantineRow.__table__.c
    assert verify_chain(engine, KEY).ok


def test_apply_twice_changes_nothing(store: ProjectionStore, engine: Engine) -> None:
    events = sample_events()
    store.apply(events)
    before = snapshot(engine)

    again = store.apply(events)
    apply_in_batches(store, events, 5)

    assert again.audited == 0
    assert again.skipped == len(events)
    assert snapshot(engine) == before
    assert store.counts()["audit_entries"] == len(events)


def test_duplicate_event_id_in_one_batch_is_applied_once(store: ProjectionStore) -> None:
    first = lead_event(1, 0, 0, 0)
    copy = ConsumedEvent(
        first.topic, 0, 1, first.key, first.meta, first.value, first.raw_value
    )  # a producer retry: same event id, next offset
    result = store.apply([first, copy])
    assert (result.audited, result.skipped) == (1, 1)
    assert store.counts()["audit_entries"] == 1
    assert store.positions() == {(CLEAN_SALES_LEADS, 0): 2}


def test_older_event_does_not_overwrite_newer(store: ProjectionStore, engine: Engine) -> None:
    store.apply([lead_event(7, 2, 0, 10)])
    # An event from further back in the same partition, with an id never seen.
    result = store.apply([lead_event(7, 1, 0, 4)])
    assert (result.audited, result.skipped) == (0, 1)
    with engine.connect() as conn:
        row = conn.execute(select(Lead).where(Lead.lead_id == "L-0007")).one()
    assert (row.company, row.source_offset) == ("Company v2", 10)

    # Inside one batch the newest (partition, offset) wins whatever the batch order.
    store.apply([lead_event(8, 2, 1, 7), lead_event(8, 1, 1, 3)])
    with engine.connect() as conn:
        row = conn.execute(select(Lead).where(Lead.lead_id == "L-0008")).one()
    assert (row.company, row.source_offset) == ("Company v2", 7)


def test_upsert_keeps_the_row_with_the_newer_position(
    store: ProjectionStore, engine: Engine
) -> None:
    # A second store reads the same lead from another topic (own audit chain), so only the
    # upsert's (partition, offset) condition stands between an older event and the row.
    store.apply([lead_event(3, 5, 0, 50)])
    replay = CLEAN_SALES_LEADS + ".replay"
    replay_store = ProjectionStore(
        engine, audit_key=KEY, projection="replay", topics=store.topics._replace(leads=replay)
    )
    assert replay_store.apply([lead_event(3, 3, 0, 30, topic=replay)]).audited == 1
    with engine.connect() as conn:
        row = conn.execute(select(Lead).where(Lead.lead_id == "L-0003")).one()
    assert (row.company, row.source_offset) == ("Company v5", 50)

    replay_store.apply([lead_event(3, 6, 0, 60, topic=replay)])
    with engine.connect() as conn:
        row = conn.execute(select(Lead).where(Lead.lead_id == "L-0003")).one()
    assert (row.company, row.source_offset, row.source_topic) == ("Company v6", 60, replay)


def test_verify_chain_ok(store: ProjectionStore, engine: Engine) -> None:
    events = sample_events()
    apply_in_batches(store, events, 4)
    result = verify_chain(engine, KEY, yield_per=3)
    assert result.ok
    assert result.broken is None
    assert result.checked == len(events)
    assert result.chains == 5
    assert result.gaps == ()
    assert not verify_chain(engine, b"wrong key").ok


def _row(engine: Engine, event_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.event_id == event_id)).one()


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit_log SET subject = 'L-9999' WHERE event_id = :eid", "hash mismatch"),
        ('UPDATE audit_log SET "offset" = "offset" + 1000 WHERE event_id = :eid', None),
        ("UPDATE audit_log SET payload_digest = :zeros WHERE event_id = :eid", "hash mismatch"),
        ("UPDATE audit_log SET signature = :zeros WHERE event_id = :eid", "bad signature"),
        ("UPDATE audit_log SET prev_hash = :zeros WHERE event_id = :eid", "prev link mismatch"),
        ("DELETE FROM audit_log WHERE event_id = :eid", "prev link mismatch"),
    ],
)
def test_tampering_names_the_first_broken_link(
    store: ProjectionStore, engine: Engine, sql: str, reason: str | None
) -> None:
    events = sample_events()
    apply_in_batches(store, events, 10)
    # Tamper with the 4th link of chain (leads, partition 1), and a later one too.
    chain_1 = [e for e in events if e.topic == CLEAN_SALES_LEADS and e.partition == 1]
    target, later = chain_1[3], chain_1[8]
    target_row = _row(engine, target.meta.id)
    next_row = _row(engine, chain_1[4].meta.id)
    with engine.begin() as conn:
        for victim in (later, target):
            conn.execute(text(sql), {"eid": victim.meta.id, "zeros": "0" * 64})

    result = verify_chain(engine, KEY)

    assert not result.ok
    assert result.broken is not None
    if sql.startswith("DELETE"):
        # The row after the deleted one no longer links to its predecessor.
        expected = (CLEAN_SALES_LEADS, 1, next_row.offset, next_row.seq, next_row.event_id)
    elif reason is None:
        # Moving a link's offset re-orders the chain: the link now at the old position's
        # successor slot no longer links back.
        expected = (CLEAN_SALES_LEADS, 1, next_row.offset, next_row.seq, next_row.event_id)
        reason = "prev link mismatch"
    else:
        expected = (CLEAN_SALES_LEADS, 1, target_row.offset, target_row.seq, target.meta.id)
    b = result.broken
    assert (b.topic, b.partition, b.offset, b.seq, b.event_id) == expected
    assert b.reason == reason
    # Everything before the broken link was checked.
    assert result.checked >= 3


def test_undecodable_messages_are_quarantined_and_advance(
    store: ProjectionStore, engine: Engine
) -> None:
    items: list[Item] = [
        lead_event(1, 0, 0, 0),
        UndecodableEvent(CLEAN_SALES_LEADS, 0, 1, "L-0001", "decode.value", "unknown schema id 9"),
        lead_event(1, 1, 0, 2),
    ]
    result = store.apply(items)
    assert (result.audited, result.undecodable) == (2, 1)
    store.apply(items)  # idempotent for undecodable messages too
    counts = store.counts()
    assert counts["quarantine_by_stage"] == {"decode": 1}
    assert counts["quarantine_by_rule"] == {"decode.value": 1}
    assert counts["audit_entries"] == 2
    assert store.positions() == {(CLEAN_SALES_LEADS, 0): 3}
    with engine.connect() as conn:
        q = conn.execute(select(QuarantineRow)).one()
    assert (q.stage, q.source_topic, q.source_partition, q.source_offset, q.status) == (
        "decode",
        CLEAN_SALES_LEADS,
        0,
        1,
        "open",
    )
    verified = verify_chain(engine, KEY)
    assert verified.ok
    assert verified.gap_count == 1
    assert (verified.gaps[0].after_offset, verified.gaps[0].next_offset) == (0, 2)


def test_rebuild_gives_identical_audit_and_read_model(
    store: ProjectionStore,
    engine: Engine,
    request: pytest.FixtureRequest,
    database_urls: list[str],
    tmp_path: Path,
) -> None:
    events = sample_events()
    apply_in_batches(store, events, 7)
    backend = request.node.callspec.params["db_url"]
    with fresh_database(backend, database_urls, tmp_path) as other_url:
        other = make_engine(other_url)
        try:
            rebuilt = ProjectionStore(other, audit_key=KEY)
            # Another split and another interleaving of partitions (per-partition order
            # kept, as Kafka delivers it).
            by_partition: dict[tuple[str, int], list[ConsumedEvent]] = {}
            for e in events:
                by_partition.setdefault((e.topic, e.partition), []).append(e)
            rng = random.Random(7)
            interleaved: list[ConsumedEvent] = []
            queues = list(by_partition.values())
            while queues:
                q = rng.choice(queues)
                interleaved.append(q.pop(0))
                queues = [q for q in queues if q]
            assert interleaved != events
            apply_in_batches(rebuilt, interleaved, 11)
            assert snapshot(other) == snapshot(engine)
            assert verify_chain(other, KEY).ok
        finally:
            other.dispose()


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (AuditEntry.__table__, store_module.AUDIT_COLUMNS),
        (Lead.__table__, store_module.LEAD_COLUMNS),
        (QuarantineRow.__table__, store_module.QUARANTINE_COLUMNS),
        (QuarantineReason.__table__, store_module.REASON_COLUMNS),
        (ProjectionOffset.__table__, store_module.OFFSET_COLUMNS),
        (MarketingContact.__table__, store_module.CONTACT_COLUMNS),
        (ServiceCase.__table__, store_module.CASE_COLUMNS),
        (HrEmployee.__table__, store_module.EMPLOYEE_COLUMNS),
        (HrErasure.__table__, store_module.ERASURE_COLUMNS),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_row_tuples_name_every_column_once(table: Table, columns: tuple[str, ...]) -> None:
    """The store builds rows as tuples in ``columns`` order: every column the database does
    not fill itself, each once."""
    insertable = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
    assert sorted(columns) == sorted(insertable)


def test_a_batch_larger_than_one_statement(store: ProjectionStore, engine: Engine) -> None:
    """SQLite writes at most SQLITE_ROWS_PER_STATEMENT rows per INSERT; a bigger batch is
    split, the last statement shorter."""
    n = 2 * SQLITE_ROWS_PER_STATEMENT + 37
    events = [lead_event(i, 0, i % 2, i // 2) for i in range(n)]
    result = store.apply(events)
    assert (result.audited, result.leads) == (n, n)
    counts = store.counts()
    assert (counts["leads"], counts["audit_entries"]) == (n, n)
    assert store.positions() == {
        (CLEAN_SALES_LEADS, 0): (n + 1) // 2,
        (CLEAN_SALES_LEADS, 1): n // 2,
    }
    assert verify_chain(engine, KEY).checked == n


def test_sqlite_stores_dates_times_and_json_as_the_orm_does(tmp_path: Path) -> None:
    """Rows are written without SQLAlchemy's type processing: the text in the file must be
    what SQLAlchemy itself writes for the same values, so ORM reads (and verify_chain) see
    the same instants."""
    url = f"sqlite:///{tmp_path / 'formats.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        when = datetime(2024, 3, 1, 10, 0, 0, 120, tzinfo=timezone(timedelta(hours=2)))
        lead = lead_event(1, 0, 0, 0)
        lead = ConsumedEvent(
            lead.topic,
            lead.partition,
            lead.offset,
            lead.key,
            dataclasses.replace(lead.meta, time=when),
            lead.value,
            lead.raw_value,
        )
        quarantined = quarantine_event(1, 0, 0, ["email.syntax", "phone.parse"])
        ProjectionStore(engine, audit_key=KEY).apply([lead, quarantined])
        q_value = quarantined.value
        with engine.begin() as conn:
            conn.execute(
                insert(Lead).values(
                    lead_id="orm",
                    created_on=lead.value["created_on"],
                    updated_at=utc(when),
                    last_event_id="orm",
                    source_topic="orm",
                    source_partition=0,
                    source_offset=0,
                )
            )
            conn.execute(
                insert(QuarantineRow).values(
                    event_id="orm",
                    quarantine_id="orm",
                    stage="orm",
                    reasons=[
                        {"rule_id": r["rule_id"], "field": r["field"], "message": r["message"]}
                        for r in q_value["reasons"]
                    ],
                    quarantined_at=utc(q_value["quarantined_at"]),
                    topic="orm",
                    partition=0,
                    offset=0,
                )
            )
            leads = conn.exec_driver_sql(
                "SELECT created_on, updated_at FROM leads ORDER BY lead_id = 'orm'"
            ).all()
            audit_time = conn.exec_driver_sql(
                "SELECT event_time FROM audit_log WHERE subject = 'L-0001' AND topic = ?",
                (CLEAN_SALES_LEADS,),
            ).scalar_one()
            rows = conn.exec_driver_sql(
                "SELECT reasons, quarantined_at FROM quarantine_records ORDER BY event_id = 'orm'"
            ).all()
        assert leads[0] == leads[1]
        assert leads[0][1] == audit_time == "2024-03-01 08:00:00.000120"
        assert rows[0] == rows[1]
    finally:
        engine.dispose()


@pytest.mark.parametrize("leads", [2, 2 * POSTGRES_ROWS_INSERTED], ids=["insert", "copy"])
def test_a_nul_character_is_refused_cleanly_or_stored_exactly(
    store: ProjectionStore, engine: Engine, db_url: str, leads: int
) -> None:
    """A NUL in a text value. PostgreSQL refuses it: through COPY as through INSERT the
    error must be SQLAlchemy's DataError (the worker quarantines on it) without the value
    in its text, the batch must leave nothing behind, and the same connection must take
    the next batch. SQLite stores it: the value must come back exactly."""
    events = [lead_event(i, 0, i % 2, i // 2) for i in range(leads)]
    events[-1].value["company"] = "Acme\x00Corp"
    if db_url.startswith("sqlite"):
        assert store.apply(events).audited == leads
        with engine.connect() as conn:
            stored = conn.scalar(
                select(Lead.company).where(Lead.lead_id == events[-1].value["lead_id"])
            )
        assert stored == "Acme\x00Corp"
        assert verify_chain(engine, KEY).ok
        return
    with pytest.raises(DataError) as refused:
        store.apply(events)
    assert "Acme" not in str(refused.value)
    counts = store.counts()
    assert (counts["leads"], counts["audit_entries"]) == (0, 0)
    assert store.positions() == {}
    assert store.apply(sample_events()).audited == 41
    assert verify_chain(engine, KEY).ok


def test_sqlite_connections_use_the_documented_settings(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL (a commit survives a killed process; see projections.db
    for the power-cut case), the 64 MiB page cache and the 10,000-page checkpoints."""
    url = f"sqlite:///{tmp_path / 'settings.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in (
                    "journal_mode",
                    "synchronous",
                    "cache_size",
                    "wal_autocheckpoint",
                    "foreign_keys",
                )
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "cache_size": -64 * 1024,
        "wal_autocheckpoint": 10_000,
        "foreign_keys": 1,
    }


def contact_event(contact: int, version: int, partition: int, offset: int) -> ConsumedEvent:
    contact_id = f"C-{contact:04d}"
    value: dict[str, Any] = {
        "contact_id": contact_id,
        "email": f"contact{contact}.v{version}@example.com",
        "first_name": "Pat",
        "last_name": f"Contact{contact}",
        "phone": "+1 415 555 0100",
        "company": f"Company v{version}",
        "job_title": None,
        "lifecycle_stage": "lead",
        "lead_status": None,
        "city": "Oakland",
        "country": "US",
        "message": "never stored in the read model",
        "email_optout": version % 2 == 1,
        "conversion_events": 3,
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=version),
        "archived": version == 2,
        "archived_at": None,
    }
    meta = EventMeta(
        id=deterministic_id("contact", contact_id, str(version)),
        source="test/hubspot",
        type="crm.marketing.contact.validated.v1",
        subject=contact_id,
        time=T0 + timedelta(minutes=version),
    )
    raw = f"{contact_id}:{version}".encode()
    return ConsumedEvent(CLEAN_MARKETING_CONTACTS, partition, offset, contact_id, meta, value, raw)


def test_marketing_contacts_keep_their_latest_clean_event_once(
    store: ProjectionStore, engine: Engine
) -> None:
    """The clean marketing contacts become one row per contact (the latest event; a batch
    applied again changes nothing), typed as the schema says, with no free-text message,
    and every event is in the audit trail."""
    events = [contact_event(c, v, c % 2, v * 2 + c // 2) for v in range(3) for c in range(4)]
    first = store.apply(events[:4])
    rest = store.apply(events[4:])
    again = store.apply(events)
    assert (first.contacts, rest.contacts, again.audited) == (4, 4, 0)
    with engine.connect() as conn:
        rows = {r.contact_id: r for r in conn.execute(select(MarketingContact))}
    assert set(rows) == {"C-0000", "C-0001", "C-0002", "C-0003"}
    row = rows["C-0003"]
    assert (row.email, row.company, row.email_optout, row.archived) == (
        "contact3.v2@example.com",
        "Company v2",
        False,
        True,
    )
    assert utc(row.source_updated_at) == T0 + timedelta(hours=2)
    assert "message" not in MarketingContact.__table__.c
    assert store.counts()["marketing_contacts"] == 4
    assert store.counts()["audit_entries"] == 12
    assert verify_chain(engine, KEY).ok


def ticket_event(
    ticket: int, version: int, partition: int, offset: int, *, redelivery: str = ""
) -> ConsumedEvent:
    statuses = [("new", "Open"), ("open", "In Progress"), ("solved", "Resolved")]
    status, case_status = statuses[version]
    value: dict[str, Any] = {
        "ticket_id": ticket,
        "generated_timestamp": 1_764_460_800 + version,
        "external_id": None,
        "subject": f"Case {ticket} v{version}",
        "description": "Card ****4242 charged twice",
        "status": status,
        "case_status": case_status,
        "case_status_policy": "2026.12-service.1",
        "priority": "high",
        "ticket_type": "incident",
        "requester_id": 9_000 + ticket,
        "submitter_id": None,
        "assignee_id": None,
        "organization_id": 77,
        "group_id": None,
        "brand_id": None,
        "channel": "email",
        "tags": ["billing"],
        "satisfaction_score": None,
        "due_at": None,
        "created_at": "2026-11-29T10:00:00Z",
        "updated_at": f"2026-11-30T1{version}:00:00Z",
    }
    meta = EventMeta(
        id=deterministic_id("ticket", str(ticket), str(version), redelivery),
        source="test/zendesk",
        type="crm.service.ticket.validated.v1",
        subject=str(ticket),
        time=T0 + timedelta(minutes=version),
    )
    raw = f"ticket:{ticket}:{version}".encode()
    return ConsumedEvent(CLEAN_SERVICE_TICKETS, partition, offset, str(ticket), meta, value, raw)


def test_service_cases_keep_their_latest_clean_event(
    store: ProjectionStore, engine: Engine
) -> None:
    """One row per ticket with the case status of its latest event (by position: a later
    event wins whatever it says); a batch applied again changes nothing."""
    events = [ticket_event(t, v, t % 2, v * 2 + t // 2) for v in range(3) for t in range(4)]
    assert store.apply(events).cases == 4
    assert store.apply(events).cases == 0
    # Re-opened: the ticketing system sent the ticket again, as new, at a later position.
    assert store.apply([ticket_event(3, 0, 1, 1_000, redelivery="reopened")]).cases == 1
    with engine.connect() as conn:
        rows = {r.ticket_id: r for r in conn.execute(select(ServiceCase))}
    assert set(rows) == {0, 1, 2, 3}
    assert (rows[2].status, rows[2].case_status, rows[2].subject) == (
        "solved",
        "Resolved",
        "Case 2 v2",
    )
    assert (rows[3].case_status, rows[3].source_offset) == ("Open", 1_000)
    assert utc(rows[2].source_updated_at) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert utc(rows[2].created_at) == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert rows[2].requester_id == 9_002
    assert store.counts()["service_cases"] == 4
    assert verify_chain(engine, KEY).ok


def employee_event(
    employee: str, version: int, partition: int, offset: int, *, source: str = "bamboohr"
) -> ConsumedEvent:
    value: dict[str, Any] = {
        "employee_id": employee,
        "change_type": "Updated" if source == "bamboohr" else "Exported",
        "last_changed": "2026-11-30T08:00:00Z",
        "source_system": source,
        "source_file": None,
        "minimisation_policy": "2026-11-30.1",
        "employee_number": f"E{employee}",
        "first_name": "Charlotte",
        "last_name": f"Abbott v{version}",
        "preferred_name": None,
        "work_email": f"e{employee}@acme.example",
        "work_phone": "+1 801 555 0100",
        "job_title": "Analyst",
        "department": "Finance",
        "division": None,
        "location": "Remote",
        "employment_status": "Active",
        "hire_date": "2016-06-12",
        "termination_date": None,
        "supervisor_id": None,
    }
    meta = EventMeta(
        id=deterministic_id("employee", employee, str(version), source),
        source="test/bamboohr",
        type="crm.hr.employee.validated.v1",
        subject=employee,
        time=T0 + timedelta(minutes=version),
    )
    raw = f"employee:{employee}:{version}:{source}".encode()
    return ConsumedEvent(CLEAN_HR_EMPLOYEES, partition, offset, employee, meta, value, raw)


def erasure_event(employee: str, partition: int, offset: int) -> ConsumedEvent:
    value = {
        "employee_id": employee,
        "erased_at": "2026-11-30T09:00:00Z",
        "source_system": "bamboohr",
        "minimisation_policy": "2026-11-30.1",
    }
    meta = EventMeta(
        id=deterministic_id("erasure", employee),
        source="test/bamboohr",
        type="crm.hr.employee.erasure.validated.v1",
        subject=employee,
        time=T0 + timedelta(hours=1),
    )
    raw = f"erasure:{employee}".encode()
    return ConsumedEvent(CLEAN_HR_ERASURES, partition, offset, employee, meta, value, raw)


def hr_state(engine: Engine) -> tuple[dict[str, Any], set[str]]:
    with engine.connect() as conn:
        employees = {r.employee_id: r for r in conn.execute(select(HrEmployee))}
        erased = set(conn.scalars(select(HrErasure.employee_id)))
    return employees, erased


def test_an_erased_employee_leaves_the_read_model_for_good(
    store: ProjectionStore, engine: Engine
) -> None:
    """Right to erasure: the employee's row goes when the erasure arrives, and no later or
    re-delivered change (nor a stale export row) brings it back; the erasure keeps only the
    id and when."""
    store.apply([employee_event(e, 0, 0, i) for i, e in enumerate(("1", "2", "3"))])
    result = store.apply([erasure_event("2", 0, 0)])
    assert result.erasures == 1
    employees, erased = hr_state(engine)
    assert (set(employees), erased) == ({"1", "3"}, {"2"})
    # Later: an update of the erased employee, then a stale export row for them.
    later = store.apply(
        [employee_event("2", 1, 0, 10), employee_event("2", 2, 1, 0, source="hris-export")]
    )
    assert (later.employees, later.audited) == (0, 2)  # audited, not projected
    employees, _ = hr_state(engine)
    assert set(employees) == {"1", "3"}
    assert employees["3"].hire_date == date(2016, 6, 12)
    assert employees["1"].work_email == "e1@acme.example"
    # The erasure row holds nothing personal.
    assert [c.name for c in HrErasure.__table__.columns] == [
        "employee_id",
        "erased_at",
        "source_system",
        "last_event_id",
        "updated_at",
    ]
    assert store.counts()["hr_employees"] == 2
    assert store.counts()["hr_erasures"] == 1


@pytest.mark.parametrize("erasure_first", [True, False])
def test_erasure_wins_in_either_order_and_on_rebuild(
    store: ProjectionStore,
    engine: Engine,
    request: pytest.FixtureRequest,
    database_urls: list[str],
    tmp_path: Path,
    erasure_first: bool,
) -> None:
    """The two HR topics are read in no fixed order: an erasure before the employee's
    changes, after them, or in the same batch (a rebuild) gives one state — gone."""
    changes = [employee_event("7", v, 0, v) for v in range(3)]
    erasure = erasure_event("7", 0, 0)
    for batch in [[erasure], changes] if erasure_first else [changes, [erasure]]:
        store.apply(batch)
    assert hr_state(engine) == ({}, {"7"})
    backend = request.node.callspec.params["db_url"]
    with fresh_database(backend, database_urls, tmp_path) as other_url:
        other = make_engine(other_url)
        try:
            ProjectionStore(other, audit_key=KEY).apply([*changes, erasure])
            assert hr_state(other) == ({}, {"7"})
        finally:
            other.dispose()


def _server_default(url: str, isolation: str) -> str:
    """`url` whose sessions start with default isolation `isolation`, as a DBA's ``ALTER
    DATABASE … SET default_transaction_isolation`` starts them (the hub does not control
    it)."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    setting = "-cdefault_transaction_isolation=" + isolation.replace(" ", "\\ ")
    return parsed.update_query_dict({"options": f"{options} {setting}".strip()}).render_as_string(
        hide_password=False
    )


def _isolation(engine: Engine) -> str:
    """What a transaction of `engine` gets unless told otherwise."""
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW transaction_isolation").scalar())


@pytest.mark.parametrize(
    ("backend", "isolation"),
    [(b, None) for b in BACKENDS]
    + [("postgresql", "repeatable read")] * ("postgresql" in BACKENDS),
)
def test_two_workers_at_once_cannot_bring_an_erased_employee_back(
    backend: str, isolation: str | None, database_urls: list[str], tmp_path: Path
) -> None:
    """Two projection workers (a consumer group splits the topics' partitions): one
    applies an employee's erasure while the other applies a later change of theirs. The
    second batch read the read model before the first committed, and still the employee
    stays gone — its batch waits for the erasure's (PostgreSQL: the read model's lock) or
    fails and is retried (SQLite: a write after a stale read), as the worker retries.
    Also where the server's default isolation is REPEATABLE READ, whose snapshot would be
    taken before the lock's wait."""
    with fresh_database(backend, database_urls, tmp_path) as fresh:
        url = fresh if isolation is None else _server_default(fresh, isolation)
        first, second = make_engine(url), make_engine(url)
        try:
            server_default = isolation or "read committed"
            if backend == "postgresql":
                assert _isolation(second) == server_default
            a, b = ProjectionStore(first, audit_key=KEY), ProjectionStore(second, audit_key=KEY)
            a.apply([employee_event("7", 0, 0, 0)])
            holding, b_started, b_done = threading.Event(), threading.Event(), threading.Event()
            overlapped: list[bool] = []
            errors: list[Exception] = []

            def hold(_conn: Any) -> None:  # the erasure's batch, written, not committed yet
                if not holding.is_set():
                    holding.set()
                    b_done.wait(3)  # time enough for the other batch, unless it must wait
                    overlapped.append(b_started.is_set())  # it ran while this one was open

            def erase() -> None:
                try:
                    a.apply([erasure_event("7", 0, 0)])
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            def change() -> None:
                b_started.set()
                try:
                    deadline = time.monotonic() + 20
                    while True:  # a failed batch is retried, as the worker does
                        try:
                            b.apply([employee_event("7", 1, 1, 0)])
                            return
                        except DBAPIError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.1)
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                finally:
                    b_done.set()

            event.listen(first, "commit", hold)
            eraser = threading.Thread(target=erase)
            eraser.start()
            assert holding.wait(10)
            changer = threading.Thread(target=change)
            changer.start()
            eraser.join(30)
            changer.join(30)
            event.remove(first, "commit", hold)
            assert not errors, errors
            assert overlapped == [True]
            assert hr_state(first) == ({}, {"7"})
            if backend == "postgresql":  # apply() set its own; the rest keep the server's
                assert _isolation(first) == _isolation(second) == server_default
        finally:
            first.dispose()
            second.dispose()


def email_event(
    event: int, kind: str, recipient: str | None, campaign: int, at: datetime, offset: int
) -> ConsumedEvent:
    value: dict[str, Any] = {
        "event_id": f"ev-{event}",
        "type": kind,
        "created_at": at,
        "recipient": recipient,
        "email_campaign_id": campaign,
        "portal_id": 62515,
        "url": None,
    }
    meta = EventMeta(
        id=deterministic_id("email-event", str(event)),
        source="test/hubspot",
        type="crm.marketing.email_event.validated.v1",
        subject=f"ev-{event}",
        time=at,
    )
    raw = f"email-event:{event}".encode()
    return ConsumedEvent(
        CLEAN_MARKETING_EMAIL_EVENTS, event % 2, offset, f"ev-{event}", meta, value, raw
    )


def sourced_lead(lead: int, version: int, offset: int, **values: Any) -> ConsumedEvent:
    e = lead_event(lead, version, 0, offset)
    return dataclasses.replace(e, value={**e.value, **values})


def test_attribution_first_and_last_touch_across_marketing_and_sales(
    store: ProjectionStore, engine: Engine
) -> None:
    """Touches from both departments meet on the (case-folded) address: a trade-show lead
    first, then campaign e-mails; sends and bounces are no touches; the views give each
    person one first and one last touch and each campaign its credit."""
    day = datetime(2026, 1, 5, tzinfo=UTC)
    store.apply(
        [
            sourced_lead(
                1,
                0,
                0,
                email="Ada@Example.com",
                lead_source="Trade show",
                created_on=date(2026, 1, 5),
            ),
            sourced_lead(2, 0, 1, email="nosource@example.com", lead_source=None),
            email_event(1, "SENT", "ada@example.com", 1_000_001, day + timedelta(days=20), 0),
            email_event(3, "OPEN", "ada@example.com", 1_000_001, day + timedelta(days=27), 1),
            email_event(5, "CLICK", "ada@example.com", 1_000_002, day + timedelta(days=55), 2),
            email_event(2, "OPEN", "bob@example.com", 1_000_001, day + timedelta(days=28), 0),
            email_event(4, "BOUNCE", "carl@example.com", 1_000_002, day, 1),
        ]
    )
    ada = store.attribution_of("ADA@example.com")
    assert ada is not None
    assert (ada["touches"], ada["first_touch_campaign"], ada["last_touch_campaign"]) == (
        3,
        "sales:Trade show",
        "email:1000002",
    )
    assert (ada["first_touch_channel"], ada["last_touch_channel"]) == (
        "sales-lead",
        "marketing-email",
    )
    # The lead's touch is its creation date at midnight UTC, on either database.
    first_at = ada["first_touch_at"]
    first_at = datetime.fromisoformat(first_at) if isinstance(first_at, str) else first_at
    assert utc(first_at) == day
    last_at = ada["last_touch_at"]
    last_at = datetime.fromisoformat(last_at) if isinstance(last_at, str) else last_at
    assert utc(last_at) == day + timedelta(days=55)
    bob = store.attribution_of("bob@example.com")
    assert bob is not None
    assert bob["first_touch_campaign"] == bob["last_touch_campaign"] == "email:1000001"
    assert store.attribution_of("carl@example.com") is None  # a bounce touched nobody
    assert store.attribution_of("nosource@example.com") is None  # no source, no touch
    campaigns = {r["campaign"]: r for r in store.attribution_by_campaign()}
    assert {
        c: (r["touches"], r["contacts"], r["first_touch_contacts"], r["last_touch_contacts"])
        for c, r in campaigns.items()
    } == {
        "email:1000001": (2, 2, 1, 1),  # ada's second touch, bob's only one
        "email:1000002": (1, 1, 0, 1),
        "sales:Trade show": (1, 1, 1, 0),
    }
    # Every person has exactly one first and one last touch.
    assert sum(r["first_touch_contacts"] for r in campaigns.values()) == 2
    assert sum(r["last_touch_contacts"] for r in campaigns.values()) == 2

    # The lead loses its source: its touch goes, and the credit moves.
    store.apply([sourced_lead(1, 1, 2, email="ada@example.com", lead_source=None)])
    ada = store.attribution_of("ada@example.com")
    assert ada is not None
    assert (ada["touches"], ada["first_touch_campaign"]) == (2, "email:1000001")


def test_attribution_ties_are_broken_by_touch_id_whatever_the_order(
    store: ProjectionStore, engine: Engine
) -> None:
    """Two touches at the same instant: the first touch is the lower touch id, the last the
    higher, in whichever order (and batches) they were written."""
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    store.apply([email_event(9, "OPEN", "tie@example.com", 1_000_009, at, 0)])
    store.apply([email_event(7, "CLICK", "tie@example.com", 1_000_007, at, 1)])
    tie = store.attribution_of("tie@example.com")
    assert tie is not None
    assert (tie["first_touch_campaign"], tie["last_touch_campaign"]) == (
        "email:1000007",
        "email:1000009",
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_leads_from_before_attribution_become_touches_after_the_upgrade(
    backend: str, database_urls: list[str], tmp_path: Path
) -> None:
    """A read model at revision 0004 with leads in it: the upgrade to 0005 gives those
    leads their person, so their touches count at once (no rebuild needed)."""
    with fresh_database(backend, database_urls, tmp_path, migrated=False) as url:
        migrate(url, "0004")
        old = make_engine(url)
        try:
            with old.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO leads (lead_id, email, lead_source, created_on, "
                        "last_event_id, source_topic, source_partition, source_offset, "
                        "updated_at) VALUES ('L-1', 'Old.Lead@Example.com', 'Web', "
                        "'2025-03-01', 'e-1', 't', 0, 0, '2025-03-01 10:00:00.000000')"
                    )
                )
        finally:
            old.dispose()
        migrate(url)
        engine = make_engine(url)
        try:
            found = ProjectionStore(engine, audit_key=KEY).attribution_of("old.lead@example.com")
            assert found is not None
            assert (found["touches"], found["first_touch_campaign"]) == (1, "sales:Web")
        finally:
            engine.dispose()
