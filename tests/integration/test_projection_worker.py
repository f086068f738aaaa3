"""ProjectionWorker end to end: a real broker (tansu or --kafka=testcontainers), real
databases (SQLite always, PostgreSQL when HUB_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

import projections.worker
from hub.broker import ensure_topics, free_port
from hub.dlp.vault import VaultPrivateKey
from hub.errors import SchemaError
from hub.events import EventMeta, deterministic_id
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT, Settings
from projections.audit import verify_chain
from projections.db import make_engine
from projections.decode import MessageDecoder
from projections.models import (
    AuditEntry,
    DlpVaultEntry,
    Lead,
    QuarantineRedrive,
    QuarantineRow,
)
from projections.store import (
    HR_EMPLOYEE_ORIGIN,
    ConsumedEvent,
    ProjectionStore,
    ProjectionTopics,
)
from projections.worker import ProjectionWorker
from tests.integration.test_projection_store import BACKENDS, erasure_event, fresh_database
from tests.integration.test_token_vault import vault_event

pytestmark = pytest.mark.integration

KEY = "worker-test-audit-key-for-the-tests-01"
SSNS = ("078-05-1120", "219-09-9999")  # values for the vault entries (no one's)
SCHEMAS = REPO_ROOT / "schemas"


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


class Feed:
    """Produces encoded lead and quarantine events with CloudEvents headers."""

    def __init__(self, bootstrap: str, unique: str, registry: SchemaRegistryClient) -> None:
        self.unique = unique
        self.topics = ProjectionTopics(
            f"t.leads.{unique}", f"t.quarantine.{unique}", f"t.redrives.{unique}"
        )
        ensure_topics(
            bootstrap,
            {
                self.topics.leads: (3, {}),
                self.topics.quarantine: (2, {}),
                self.topics.redrives: (2, {}),
            },
        )
        self.leads = AvroCodec(
            registry, self.topics.leads, load_schema_text(schema_path(SCHEMAS, "sales/Lead"))
        )
        self.quarantine = AvroCodec(
            registry,
            self.topics.quarantine,
            load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord")),
        )
        self.redrives = AvroCodec(
            registry,
            self.topics.redrives,
            load_schema_text(schema_path(SCHEMAS, "common/QuarantineRedriven")),
        )
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.sent = 0

    def meta(self, kind: str, subject: str, *parts: str) -> EventMeta:
        return EventMeta(
            id=deterministic_id(self.unique, kind, subject, *parts),
            source="test/worker",
            type=f"crm.test.{kind}",
            subject=subject,
            time=datetime(2024, 6, 1, tzinfo=UTC) + timedelta(seconds=self.sent),
            lineage={"hub_department": "sales"},
        )

    def lead(self, lead: int, version: int, *, company: str | None = None) -> None:
        lead_id = f"L-{lead:03d}"
        value = {
            "lead_id": lead_id,
            "first_name": "Test",
            "last_name": f"Lead{lead}",
            "email": f"lead{lead}@example.com",
            "company": company if company is not None else f"Company v{version}",
            "created_on": date(2024, 1, 1),
        }
        self._send(
            self.topics.leads,
            lead_id,
            self.leads.encode(value),
            self.meta("lead", lead_id, str(version)),
        )

    def quarantined(self, n: int) -> None:
        value = {
            "quarantine_id": f"Q-{self.unique}-{n}",
            "stage": "validation",
            "department": "sales",
            "entity_id": f"L-{n:03d}",
            "reasons": [{"rule_id": "email.syntax", "field": "email", "message": "not valid"}],
            "payload_format": "json",
            "payload": b"{}",
            "quarantined_at": datetime(2024, 6, 1, tzinfo=UTC),
        }
        key = f"L-{n:03d}"
        self._send(
            self.topics.quarantine, key, self.quarantine.encode(value), self.meta("q", key, str(n))
        )

    def redriven(self, n: int, attempt: int = 1) -> None:
        quarantine_id = f"Q-{self.unique}-{n}"
        redrive_id = deterministic_id("redrive", quarantine_id, str(attempt))
        value = {
            "redrive_id": redrive_id,
            "quarantine_id": quarantine_id,
            "quarantine_event_id": self.meta("q", f"L-{n:03d}", str(n)).id,
            "stage": "validation",
            "action": "republished",
            "target": f"{self.topics.leads}:0:{n}",
            "attempt": attempt,
            "rule_id": "email.syntax",
            "requested_by": "steward",
            "requested_at": datetime(2024, 6, 2, tzinfo=UTC),
        }
        self._send(
            self.topics.redrives,
            quarantine_id,
            self.redrives.encode(value),
            self.meta("redrive", quarantine_id, str(attempt)),
        )

    def garbage(self, key: str, *, headers: bool) -> None:
        meta = self.meta("garbage", key)
        self.producer.produce(
            self.topics.leads,
            key=key,
            value=b"this is not avro",
            headers=ce_headers(meta) if headers else None,
        )
        self.sent += 1

    def vault_entry(
        self, topic: str, codec: AvroCodec, entry: ConsumedEvent, *, partition: int = -1
    ) -> None:
        """A token vault entry (`tests.integration.test_token_vault.vault_event`), on
        `partition` (-1: the producer's partitioner picks)."""
        assert entry.key is not None
        self.producer.produce(
            topic,
            key=entry.key,
            value=codec.encode(entry.value),
            headers=ce_headers(entry.meta),
            partition=partition,
        )
        self.sent += 1

    def tombstone(self, topic: str, key: str) -> None:
        self.producer.produce(topic, key=key, value=None)
        self.sent += 1

    def _send(self, topic: str, key: str, value: bytes, meta: EventMeta) -> None:
        self.producer.produce(topic, key=key, value=value, headers=ce_headers(meta))
        self.sent += 1

    def flush(self) -> None:
        assert self.producer.flush(15) == 0


def worker_settings(tmp_path: Path, bootstrap: str, db_url: str) -> Settings:
    # A short session: the broker delays every group join by half of it.
    return Settings(
        home=tmp_path / "home",
        kafka_bootstrap=bootstrap,
        database_url=db_url,
        audit_key=KEY,
        consumer_session_timeout_ms=2000,
    )


def ce_headers(meta: EventMeta) -> list[tuple[str, str | bytes | None]]:
    return list(meta.to_headers())


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def run_worker(worker: ProjectionWorker, done: Callable[[], bool]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(done)
        # Let it poll once more: anything it would (wrongly) re-read shows up in its stats.
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def audit_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(AuditEntry)) or 0


def sample(name: str, topic: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(name, {"topic": topic, "outcome": outcome}) or 0.0


def test_worker_applies_exactly_once_and_resumes_from_stored_offsets(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    feed = Feed(kafka_bootstrap, unique, registry)
    for version in range(3):
        for lead in range(20):
            feed.lead(lead, version)
    for n in range(6):
        feed.quarantined(n)
    feed.garbage("L-000", headers=True)  # not the wire format
    feed.garbage("L-001", headers=False)  # no CloudEvents headers
    feed.flush()

    settings = worker_settings(tmp_path, kafka_bootstrap, db_url)
    store = ProjectionStore(engine, audit_key=KEY.encode(), topics=feed.topics)

    def make_worker(group: str) -> ProjectionWorker:
        return ProjectionWorker(
            settings,
            topics=feed.topics,
            group_id=group,
            batch_size=25,
            registry=registry,
        )

    first = make_worker(f"projections-{unique}-a")
    run_worker(first, lambda: store.counts()["quarantine"] == 8 and audit_count(engine) == 66)

    counts = store.counts()
    assert counts["leads"] == 20
    assert counts["audit_entries"] == 66
    assert counts["quarantine_by_stage"] == {"decode": 2, "validation": 6}
    assert counts["quarantine_by_rule"] == {
        "decode.headers": 1,
        "decode.value": 1,
        "email.syntax": 6,
    }
    assert first.stats.received == 68
    assert first.stats.applied == 66
    assert first.stats.skipped == 0
    assert first.stats.undecodable == 2
    assert sum(store.positions().values()) == 68
    with engine.connect() as conn:
        companies = set(conn.scalars(select(Lead.company)))
        distinct = conn.scalar(select(func.count(func.distinct(AuditEntry.event_id))))
    assert companies == {"Company v2"}
    assert distinct == 66
    assert verify_chain(engine, KEY.encode()).ok
    assert sample("hub_projection_events_total", feed.topics.leads, "applied") == 60
    assert sample("hub_projection_events_total", feed.topics.leads, "undecodable") == 2
    assert sample("hub_projection_events_total", feed.topics.quarantine, "applied") == 6

    # More events; a worker in a NEW consumer group has no Kafka offsets to go by, so it
    # can only resume where the database says.
    for lead in range(20):
        feed.lead(lead, 3)
    for n in range(6, 8):
        feed.quarantined(n)
    feed.flush()
    second = make_worker(f"projections-{unique}-b")
    run_worker(second, lambda: audit_count(engine) == 88)

    assert second.stats.received == 22
    assert second.stats.applied == 22
    assert second.stats.skipped == 0
    counts = store.counts()
    assert counts["leads"] == 20
    assert counts["audit_entries"] == 88
    assert counts["quarantine"] == 10
    assert sum(store.positions().values()) == 90
    with engine.connect() as conn:
        assert set(conn.scalars(select(Lead.company))) == {"Company v3"}
    result = verify_chain(engine, KEY.encode())
    assert result.ok
    assert result.gap_count == 2  # the two undecodable messages are not audited


def test_worker_retries_a_batch_until_the_database_takes_it(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    feed = Feed(kafka_bootstrap, unique, registry)
    for lead in range(5):
        feed.lead(lead, 0)
    feed.flush()
    settings = worker_settings(tmp_path, kafka_bootstrap, db_url)
    worker = ProjectionWorker(
        settings,
        topics=feed.topics,
        group_id=f"projections-{unique}",
        registry=registry,
    )
    failures = 3
    real_apply = worker.store.apply

    def flaky_apply(batch: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            with worker.engine.connect() as conn:  # a real database error
                conn.execute(text("SELECT * FROM no_such_table"))
        return real_apply(batch)

    worker.store.apply = flaky_apply  # type: ignore[method-assign]
    before = REGISTRY.get_sample_value("hub_projection_errors_total", {"error": "OperationalError"})
    before_pg = REGISTRY.get_sample_value(
        "hub_projection_errors_total", {"error": "ProgrammingError"}
    )
    run_worker(worker, lambda: audit_count(engine) == 5)

    assert failures == 0
    assert worker.stats.applied == 5
    errors = sum(
        (REGISTRY.get_sample_value("hub_projection_errors_total", {"error": e}) or 0) - (b or 0)
        for e, b in (("OperationalError", before), ("ProgrammingError", before_pg))
    )
    assert errors == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_process_migrates_serves_metrics_and_stops_on_sigterm(
    kafka_bootstrap: str, backend: str, database_urls: list[str], tmp_path: Path
) -> None:
    with fresh_database(backend, database_urls, tmp_path, migrated=False) as db_url:
        engine = make_engine(db_url)
        try:
            _run_worker_process(kafka_bootstrap, db_url, engine, tmp_path)
        finally:
            engine.dispose()


def _run_worker_process(kafka_bootstrap: str, db_url: str, engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        assert "alembic_version" not in inspect(conn).get_table_names()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HUB_HOME": str(tmp_path / "home"),
        "HUB_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "HUB_DATABASE_URL": db_url,
        "HUB_AUDIT_KEY": KEY,
        "HUB_METRICS_PORT": str(port),
        "HUB_CONFIG_FILE": str(tmp_path / "absent.yaml"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "projections.worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def metrics_up() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    return b"hub_projection_batches_total" in r.read()
            except OSError:
                return False

        wait_for(metrics_up, timeout=30)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0010"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_an_event_the_database_refuses_is_quarantined_and_the_partition_moves_on(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    """A NUL character is valid Avro but PostgreSQL refuses it in text (DataError): the
    worker must not retry that batch forever. On SQLite, which stores NUL, the same event is
    simply applied; on both, every event ends up applied or quarantined and none blocks."""
    feed = Feed(kafka_bootstrap, unique, registry)
    for lead in range(6):
        feed.lead(lead, 0, company="Acme\x00Corp" if lead == 3 else None)
    feed.flush()
    settings = worker_settings(tmp_path, kafka_bootstrap, db_url)
    store = ProjectionStore(engine, audit_key=KEY.encode(), topics=feed.topics)
    worker = ProjectionWorker(
        settings, topics=feed.topics, group_id=f"projections-{unique}", registry=registry
    )

    def settled() -> bool:
        c = store.counts()
        done: int = c["audit_entries"] + c["quarantine_by_stage"].get("projection", 0)
        return done == 6

    run_worker(worker, settled)
    counts = store.counts()
    if db_url.startswith("sqlite"):
        assert counts["leads"] == 6
        assert counts["quarantine"] == 0
    else:
        assert counts["leads"] == 5
        assert counts["quarantine_by_stage"] == {"projection": 1}
        assert counts["quarantine_by_rule"] == {"projection.refused": 1}
    assert verify_chain(engine, KEY.encode()).ok


# -- decoding ---------------------------------------------------------------------------
def _envelope(**changes: Any) -> list[tuple[str, bytes | str | None]]:
    meta = EventMeta(
        id="e-1",
        source="test/decode",
        type="crm.test.lead",
        subject="L-001",
        time=datetime(2024, 6, 1, 12, 30, 0, 250, tzinfo=UTC),
        lineage={"hub_department": "sales", "hub_trace_id": "t-1", "hub_connector": ""},
    )
    return [(k, v) for k, v in meta.to_headers() if k not in changes] + list(changes.items())


HEADER_CASES: dict[str, list[tuple[str, bytes | str | None]] | None] = {
    "as produced": _envelope(),
    "a repeated header: the last wins": [*_envelope(), ("ce_id", b"e-2")],
    "a None value does not hide an earlier one": [*_envelope(), ("ce_subject", None)],
    "str values": [(k, v.decode() if isinstance(v, bytes) else v) for k, v in _envelope()],
    "no content-type and no subject": [
        (k, v) for k, v in _envelope() if k not in ("content-type", "ce_subject")
    ],
    "no ce_type": [(k, v) for k, v in _envelope() if k != "ce_type"],
    "no headers": None,
    "a bad ce_time": _envelope(ce_time=b"yesterday"),
    "a header that is not UTF-8": _envelope(hub_trace_id=b"\xff\xfe"),
}


@pytest.mark.parametrize("headers", list(HEADER_CASES.values()), ids=list(HEADER_CASES))
def test_decoder_reads_headers_as_eventmeta_from_headers(
    headers: list[tuple[str, bytes | str | None]] | None,
) -> None:
    decoder = MessageDecoder({})
    expected = _outcome(EventMeta.from_headers, headers)
    assert _outcome(decoder.event_meta, headers) == expected
    assert _outcome(decoder.event_meta, headers) == expected  # ce_time cached: same value


def _outcome(read: Callable[[Any], EventMeta], headers: Any) -> object:
    """What ``read`` gives, or the class and text of what it raises."""
    try:
        return read(headers)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return (type(exc), str(exc))


def test_decoder_without_ce_time_stamps_now() -> None:
    headers = [(k, v) for k, v in _envelope() if k != "ce_time"]
    before = datetime.now(UTC)
    meta = MessageDecoder({}).event_meta(headers)
    assert before <= meta.time <= datetime.now(UTC)
    assert meta == dataclasses.replace(EventMeta.from_headers(headers), time=meta.time)


def test_decoder_reads_values_as_the_codec_does(
    unique: str, registry: SchemaRegistryClient
) -> None:
    """Values whose writer schema is the reader schema skip resolution; others (an older
    writer schema, garbage, an unknown id) take the codec's path: same values, same
    errors."""
    topic = f"t.decode.{unique}"
    lead_schema = load_schema_text(schema_path(SCHEMAS, "sales/Lead"))
    codec = AvroCodec(registry, topic, lead_schema)
    older = json.loads(lead_schema)
    older["fields"] = [f for f in older["fields"] if f["name"] not in ("notes", "owner")]
    old_codec = AvroCodec(registry, f"{topic}.v0", json.dumps(older))
    value = {
        "lead_id": "L-1",
        "first_name": "Zoë",
        "company": "Acme",
        "created_on": date(2024, 1, 31),
        "owner": "rep",
    }
    current = codec.encode(value)
    old = old_codec.encode({k: v for k, v in value.items() if k != "owner"})
    decoder = MessageDecoder({topic: AvroCodec(registry, topic, lead_schema)})
    for _ in range(2):  # first through the codec, then the direct path
        assert decoder.value(topic, current) == codec.decode(current)
        assert decoder.value(topic, old) == codec.decode(old)
    assert decoder.value(topic, current)["owner"] == "rep"
    assert decoder.value(topic, old)["owner"] is None  # the reader's default
    unknown = current[:1] + (2**31 - 1).to_bytes(4, "big") + current[5:]
    for raw in (current[:-3], old[:-3], b"not avro", b"\x00\x00", None, unknown):
        with pytest.raises(SchemaError) as expected:
            codec.decode(raw)
        with pytest.raises(SchemaError) as got:
            decoder.value(topic, raw)
        assert got.value.message == expected.value.message


def test_a_redrive_marks_its_quarantine_row_redriven_whichever_arrives_first(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    """`crmhub quarantine redrive` records a QuarantineRedriven event; the projection keeps
    one row per re-drive, audits it like any event, and marks the quarantine row re-driven.
    Topics are consumed at their own pace: a re-drive seen before its quarantine record (a
    replay into an empty database) still leaves the row re-driven."""
    feed = Feed(kafka_bootstrap, unique, registry)
    feed.quarantined(1)
    feed.quarantined(2)
    feed.quarantined(3)
    feed.redriven(1)
    feed.redriven(1, attempt=2)
    feed.redriven(4)  # its quarantine record comes later
    feed.flush()
    settings = worker_settings(tmp_path, kafka_bootstrap, db_url)

    def worker() -> ProjectionWorker:
        return ProjectionWorker(
            settings, topics=feed.topics, group_id=f"projections-{unique}", registry=registry
        )

    first = worker()
    run_worker(first, lambda: audit_count(engine) == 6)

    def rows() -> dict[str, tuple[str, int]]:
        with engine.connect() as conn:
            status = {
                r.quarantine_id: r.status
                for r in conn.execute(select(QuarantineRow.quarantine_id, QuarantineRow.status))
            }
            n = {
                r.quarantine_id: r.n
                for r in conn.execute(
                    select(QuarantineRedrive.quarantine_id, func.count().label("n")).group_by(
                        QuarantineRedrive.quarantine_id
                    )
                )
            }
        return {q: (s, n.get(q, 0)) for q, s in status.items()}

    q = f"Q-{unique}"
    assert rows() == {f"{q}-1": ("redriven", 2), f"{q}-2": ("open", 0), f"{q}-3": ("open", 0)}
    with engine.connect() as conn:
        redrive = conn.execute(
            select(QuarantineRedrive).where(QuarantineRedrive.attempt == 2)
        ).one()
        audited = set(conn.scalars(select(AuditEntry.event_type)))
    assert (redrive.quarantine_id, redrive.action, redrive.requested_by) == (
        f"{q}-1",
        "republished",
        "steward",
    )
    assert redrive.requested_at == datetime(2024, 6, 2, tzinfo=UTC).replace(
        tzinfo=redrive.requested_at.tzinfo
    )
    assert audited == {"crm.test.q", "crm.test.redrive"}

    feed.quarantined(4)
    feed.redriven(2)
    feed.flush()
    run_worker(worker(), lambda: audit_count(engine) == 8)
    assert rows() == {
        f"{q}-1": ("redriven", 2),
        f"{q}-2": ("redriven", 1),
        f"{q}-3": ("open", 0),
        f"{q}-4": ("redriven", 1),
    }
    assert verify_chain(engine, KEY.encode()).ok


def _vault_feed(
    kafka_bootstrap: str, unique: str, registry: SchemaRegistryClient
) -> tuple[Feed, ProjectionTopics, AvroCodec]:
    """A feed whose token vault (compacted, as in production) and HR erasure topics are
    this test's own, and the vault entries' codec."""
    feed = Feed(kafka_bootstrap, unique, registry)
    topics = feed.topics._replace(vault=f"t.vault.{unique}", erasures=f"t.erasures.{unique}")
    ensure_topics(
        kafka_bootstrap,
        {topics.vault: (2, {"cleanup.policy": "compact"}), topics.erasures: (1, {})},
    )
    codec = AvroCodec(
        registry, topics.vault, load_schema_text(schema_path(SCHEMAS, "dlp/VaultEntry"))
    )
    return feed, topics, codec


def _vault_records(bootstrap: str, topic: str, count: int) -> list[tuple[str, bytes | None, int]]:
    """The first `count` records of the vault's `topic` (key, value, partition), from the
    beginning of both its partitions (assigned: no group join to wait for)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "logger": logging.getLogger("tests.kafka"),
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    records: list[tuple[str, bytes | None, int]] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                key = bytes(msg.key() or b"").decode()
                records.append((key, msg.value(), int(msg.partition() or 0)))
    finally:
        consumer.close()
    return records


def _vault_worker(
    tmp_path: Path,
    bootstrap: str,
    db_url: str,
    engine: Engine,
    topics: ProjectionTopics,
    registry: SchemaRegistryClient,
    unique: str,
) -> tuple[ProjectionStore, ProjectionWorker]:
    """The store and a worker of this test's topics."""
    store = ProjectionStore(engine, audit_key=KEY.encode(), topics=topics)
    worker = ProjectionWorker(
        worker_settings(tmp_path, bootstrap, db_url),
        topics=topics,
        group_id=f"projections-{unique}",
        batch_size=25,
        registry=registry,
    )
    return store, worker


def test_a_tombstone_on_the_vault_topic_deletes_the_token_and_is_no_bad_record(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    """Through the broker: a record with a vault key (token and owner) and no value on the
    vault's compacted topic (a tombstone, as an operator deleting the entry would send)
    deletes the key's row. It is neither quarantined (it has no CloudEvents headers, which any
    other record without them would be) nor audited; the worker counts it apart."""
    feed, topics, codec = _vault_feed(kafka_bootstrap, unique, registry)
    private = VaultPrivateKey.generate()
    entries = [vault_event(private, n, f"ev-{unique}-{n}", ssn) for n, ssn in enumerate(SSNS)]
    for entry in entries:
        feed.vault_entry(topics.vault, codec, entry)
    deleted, kept = (str(e.key) for e in entries)
    feed.tombstone(topics.vault, deleted)
    feed.flush()

    store, worker = _vault_worker(
        tmp_path, kafka_bootstrap, db_url, engine, topics, registry, unique
    )
    run_worker(worker, lambda: sum(store.positions().values()) == 3)

    with engine.connect() as conn:
        assert set(conn.scalars(select(DlpVaultEntry.vault_key))) == {kept}
    counts = store.counts()
    assert (counts["quarantine"], counts["audit_entries"]) == (0, 2)
    assert (worker.stats.received, worker.stats.undecodable) == (3, 0)
    assert sample("hub_projection_events_total", topics.vault, "tombstone") == 1


def _processor_partition(key: str, partitions: int) -> int:
    """The partition the processors write a vault entry with this key to: Faust produces
    with aiokafka's default partitioner (murmur2 of the key, as the Java client)."""
    return int(DefaultPartitioner()(key.encode(), list(range(partitions)), []))


def test_an_hr_erasure_tombstones_the_employees_tokens_on_the_vault_topic(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
) -> None:
    """Right to erasure reaches the compacted topic: after HR erasures the worker publishes
    a tombstone for each erased employee's vault key, on the partition that holds the key's
    entry (where the processors put it; elsewhere compaction would never drop the sealed
    value), reads them back without a quarantine row, and empties its outbox; the other
    employees' entries stay."""
    feed, topics, codec = _vault_feed(kafka_bootstrap, unique, registry)
    private = VaultPrivateKey.generate()
    hr: dict[str, Any] = {"source": HR_EMPLOYEE_ORIGIN}
    entries = [
        vault_event(private, n, f"ev-{unique}-e{n}", f"900-00-{n:04d}", subject=f"E{n}", **hr)
        for n in range(6)
    ]
    where = {str(e.key): _processor_partition(str(e.key), 2) for e in entries}
    for entry in entries:
        feed.vault_entry(topics.vault, codec, entry, partition=where[str(entry.key)])
    erasures = AvroCodec(
        registry, topics.erasures, load_schema_text(schema_path(SCHEMAS, "hr/EmployeeErased"))
    )
    for n in range(4):
        erasure = erasure_event(f"E{n}", 0, n)
        feed.producer.produce(
            topics.erasures,
            key=f"E{n}",
            value=erasures.encode(erasure.value),
            headers=ce_headers(erasure.meta),
        )
    feed.flush()
    erased = {str(e.key) for e in entries[:4]}
    kept = {str(e.key) for e in entries[4:]}

    store, worker = _vault_worker(
        tmp_path, kafka_bootstrap, db_url, engine, topics, registry, unique
    )
    before = REGISTRY.get_sample_value("hub_projection_vault_tombstones_total") or 0.0
    # 6 entries + 4 erasures + the 4 tombstones the worker publishes and reads back
    run_worker(worker, lambda: sum(store.positions().values()) == 14)

    assert store.queued_tombstones(10).keys == []
    records = _vault_records(kafka_bootstrap, topics.vault, 10)
    tombstones = {key: partition for key, value, partition in records if value is None}
    assert tombstones == {key: where[key] for key in erased}
    with engine.connect() as conn:
        assert set(conn.scalars(select(DlpVaultEntry.vault_key))) == kept
    assert store.counts()["quarantine"] == 0
    assert REGISTRY.get_sample_value("hub_projection_vault_tombstones_total") == before + 4
    assert sample("hub_projection_events_total", topics.vault, "tombstone") == 4


def _erased_e1(
    bootstrap: str,
    unique: str,
    registry: SchemaRegistryClient,
    engine: Engine,
    tmp_path: Path,
    db_url: str,
) -> tuple[ProjectionTopics, ProjectionStore, str, ProjectionWorker]:
    """Employee E1's vault entry and erasure applied to the store (no broker involved):
    E1's vault key queued for a tombstone. The topics, the store, the key and a worker."""
    _feed, topics, _codec = _vault_feed(bootstrap, unique, registry)
    store = ProjectionStore(engine, audit_key=KEY.encode(), topics=topics)
    entry = vault_event(VaultPrivateKey.generate(), 0, f"ev-{unique}", SSNS[0], subject="E1",
                        source=HR_EMPLOYEE_ORIGIN)  # fmt: skip
    store.apply([dataclasses.replace(entry, topic=topics.vault)])
    store.apply([dataclasses.replace(erasure_event("E1", 0, 0), topic=topics.erasures)])
    queued = store.queued_tombstones(10)
    assert (queued.publish, queued.keys) == ([str(entry.key)], [str(entry.key)])
    worker = ProjectionWorker(
        worker_settings(tmp_path, bootstrap, db_url), topics=topics, registry=registry
    )
    return topics, store, str(entry.key), worker


def test_tombstones_stay_queued_until_the_broker_takes_them(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that does not take the tombstones (here: nothing listens where the
    producer connects) leaves the outbox as it was, to be tried again; the next round,
    with the broker back, publishes them and empties it."""
    topics, store, key, worker = _erased_e1(
        kafka_bootstrap, unique, registry, engine, tmp_path, db_url
    )
    queued = store.queued_tombstones(10)
    real = worker.tombstone_config()
    down = {**real, "bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 1000}
    monkeypatch.setattr(worker, "tombstone_config", lambda: down)
    assert worker.publish_tombstones() is False
    assert store.queued_tombstones(10) == queued

    monkeypatch.setattr(worker, "tombstone_config", lambda: real)
    assert worker.publish_tombstones() is True
    assert store.queued_tombstones(10).keys == []
    assert [(k, v) for k, v, _ in _vault_records(kafka_bootstrap, topics.vault, 1)] == [(key, None)]
    worker.engine.dispose()


class _FullQueueProducer:
    """A producer whose local queue is full (librdkafka raises BufferError)."""

    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def produce(self, *_args: Any, **_kwargs: Any) -> None:
        raise BufferError("Local: Queue full")


def test_a_producer_error_leaves_the_tombstones_queued_and_the_worker_running(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception from the Kafka client (a full queue, a bad setting) is a failed round,
    not a dead worker: the outbox stays as it was and the round is tried again later."""
    _topics, store, _token, worker = _erased_e1(
        kafka_bootstrap, unique, registry, engine, tmp_path, db_url
    )
    queued = store.queued_tombstones(10)
    monkeypatch.setattr(projections.worker, "Producer", _FullQueueProducer)
    worker._tombstones_at = 0.0  # due now, as after a batch that queued tokens
    worker._tombstones_if_due()  # must not raise
    retry_at = worker._tombstones_at
    assert retry_at is not None
    assert retry_at > time.monotonic()  # tried again later
    assert store.queued_tombstones(10) == queued
    worker.engine.dispose()


def test_an_erasure_in_a_batch_applied_event_by_event_still_gets_its_tombstones(
    kafka_bootstrap: str,
    unique: str,
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    registry: SchemaRegistryClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch the database refuses is applied one event at a time; the tokens an erasure
    in it queued are published after it, as after any batch (not at the next restart)."""
    _feed, topics, _codec = _vault_feed(kafka_bootstrap, unique, registry)
    entry = vault_event(VaultPrivateKey.generate(), 0, f"ev-{unique}", SSNS[0], subject="E1",
                        source=HR_EMPLOYEE_ORIGIN)  # fmt: skip
    worker = ProjectionWorker(
        worker_settings(tmp_path, kafka_bootstrap, db_url), topics=topics, registry=registry
    )
    worker.store.apply([dataclasses.replace(entry, topic=topics.vault)])
    real_apply = worker.store.apply

    def refuses_batches(items: list[Any]) -> Any:
        if len(items) > 1:
            raise IntegrityError("INSERT …", {}, Exception("refused"))
        return real_apply(items)

    monkeypatch.setattr(worker.store, "apply", refuses_batches)
    erasure = dataclasses.replace(erasure_event("E1", 0, 0), topic=topics.erasures)
    other = dataclasses.replace(erasure_event("E2", 0, 1), topic=topics.erasures)
    result = worker._apply_until_done([erasure, other], threading.Event())
    assert result is not None
    assert result.tombstones_queued == 1
    assert result.positions == {(topics.erasures, 0): 2}
    worker.engine.dispose()
