"""The real path: spreadsheet connector -> raw topic -> the processor (Faust worker in a
subprocess) -> clean and quarantine topics -> the projection worker -> read model and audit
trail. The module runs its own embedded broker and registry, so the hub's default topic
names are used as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine, func, select

from hub import topics
from hub.broker import EmbeddedBroker, ensure_topics
from hub.connect_offsets import OffsetStore
from hub.policies import load_validation_policy
from hub.processors.app import APP_ID
from hub.settings import REPO_ROOT, Settings
from projections.audit import verify_chain
from projections.db import make_engine
from projections.models import AuditEntry, Lead, QuarantineReason, QuarantineRow
from projections.worker import ProjectionWorker
from tests.integration.conftest import (
    RunningProcessor,
    headers_of,
    read_topic,
    running_processor,
    running_registry,
    stop_process,
    wait_for,
)
from tests.integration.test_connector_resume import CONNECTOR, Topics, build_runner
from tests.integration.test_projection_store import BACKENDS, fresh_database

pytestmark = pytest.mark.integration

KEY = "pipeline-audit-key-for-the-tests-0001"
POLICY_VERSION = load_validation_policy(REPO_ROOT / "policies" / "validation.yaml").version
DEFAULT_TOPICS = Topics(topics.RAW_SALES_LEADS, topics.QUARANTINE, topics.CONNECT_OFFSETS)

MESSY = """Sales leads export,,,,,,,
Lead ID,First Name,Last Name,Email,Phone,Company,Country,Created
L-100,Ada,Lovelace,ada@example.com,(415) 555-0123,Analytical Engines,US,2024-03-05
L-101,Grace,Hopper,GRACE@Navy.MIL,212.555.0199,US Navy,United States,2024-03-06
L-102, Alan ,Turing,alan@example.co.uk,+1 604 555 0123,Bletchley,CA,2024-03-07
L-101,Grace,Hopper,grace@navy.mil,212-555-0199,US Navy Reserve,US,2024-03-08
L-103,Bad,Email,not-an-email,(415) 555-0124,Acme,US,2024-03-09
L-104,No,Company,nc@example.com,(415) 555-0125,,US,2024-03-10
L-105,Too,Many,x@example.com,1,2,3,4,5
L-106,Katherine,Johnson,kj@example.org,4155550126,NASA,USA,2024-03-11
"""
BULK_ROWS = 10_000  # five projection batches at least: the kill lands mid-stream


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    registry_url: str
    home: Path
    processor: RunningProcessor


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Its own broker and registry, the default topics, and the real processor."""
    home = tmp_path_factory.mktemp("pipeline")
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        with (
            running_registry(broker.bootstrap, topics.SCHEMAS) as url,
            running_processor(broker.bootstrap, url, home / "processor") as processor,
        ):
            yield Stack(broker.bootstrap, url, home, processor)


def import_file(stack: Stack, name: str, text: str) -> None:
    """Drop one file and run the connector over it (default topics and offsets topic);
    then wait until the processor has emitted one event per row read so far."""
    drop = stack.home / "drop"
    drop.mkdir(exist_ok=True)
    (drop / name).write_text(text, encoding="utf-8")
    with SchemaRegistryClient({"url": stack.registry_url}) as registry:
        build_runner(stack.bootstrap, registry, drop, DEFAULT_TOPICS).run_once()
    offsets = OffsetStore(stack.bootstrap)
    offsets.load()
    rows_read = sum(int(o.get("rows_read", 0)) for _, o in offsets.all_for(CONNECTOR))

    def processed() -> bool:
        return len(topic_event_ids(stack.bootstrap, idle=0.3)) >= rows_read

    try:
        wait_for(processed, timeout=90, interval=0.5)
    except AssertionError as exc:
        seen = len(topic_event_ids(stack.bootstrap, idle=0.3))
        tail = stack.processor.dump_stacks()
        raise AssertionError(
            f"{exc}: {seen} of {rows_read} rows processed; "
            f"raw topic (committed by the processor, end): {progress(stack.bootstrap)}\n{tail}"
        ) from None


def progress(bootstrap: str) -> dict[int, tuple[int, int]]:
    """Per raw partition: the processor group's committed offset and the log end offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": APP_ID})
    try:
        parts = consumer.list_topics(topics.RAW_SALES_LEADS, timeout=10)
        tps = [
            TopicPartition(topics.RAW_SALES_LEADS, p)
            for p in parts.topics[topics.RAW_SALES_LEADS].partitions
        ]
        committed = consumer.committed(tps, timeout=10)
        return {
            tp.partition: (tp.offset, consumer.get_watermark_offsets(tp, timeout=10)[1])
            for tp in committed
        }
    finally:
        consumer.close()


def topic_event_ids(bootstrap: str, idle: float = 1.0) -> set[str]:
    """Distinct event ids on the clean and quarantine topics (what the projections see)."""
    ids: set[str] = set()
    for topic in (topics.CLEAN_SALES_LEADS, topics.QUARANTINE):
        ids.update(headers_of(m)["ce_id"] for m in read_topic(bootstrap, topic, idle=idle))
    return ids


@pytest.fixture(scope="module")
def messy(stack: Stack) -> Stack:
    import_file(stack, "messy.csv", MESSY)
    return stack


@pytest.fixture(scope="module")
def bulk(stack: Stack) -> Stack:
    lines = ["Lead ID,First Name,Last Name,Email,Phone,Company,Country"]
    for i in range(BULK_ROWS):
        email = f"bulk{i}@example.com" if i % 50 else f"bulk{i}-at-example.com"
        lines.append(f"B-{i % 7_500:05d},Bulk,Lead{i},{email},(415) 555-{i % 10_000:04d},Co,US")
    lines.insert(1000, "B-x,1,2,3,4,5,6,7,8")  # unreadable
    import_file(stack, "bulk.csv", "\n".join(lines) + "\n")
    return stack


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


def audit_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_messy_sheet_reaches_the_read_model_and_the_audit_trail(
    messy: Stack, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    expected_events = topic_event_ids(messy.bootstrap)
    settings = Settings(
        home=tmp_path / "home",
        kafka_bootstrap=messy.bootstrap,
        schema_registry_url=messy.registry_url,
        database_url=db_url,
        audit_key=KEY,
        consumer_session_timeout_ms=2000,  # the broker delays a join by half of it
    )
    stop = threading.Event()
    with SchemaRegistryClient({"url": messy.registry_url}) as registry:
        worker = ProjectionWorker(
            settings, group_id=f"projections-{uuid.uuid4().hex[:8]}", registry=registry
        )
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: audit_count(engine) >= len(expected_events), timeout=60)
            time.sleep(1.0)  # anything applied twice would show now
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert worker.stats.applied == len(expected_events)
    assert worker.stats.skipped == 0

    with engine.connect() as conn:
        leads = {
            r.lead_id: r
            for r in conn.execute(
                select(
                    Lead.lead_id, Lead.first_name, Lead.phone_e164, Lead.phone_display
                ).add_columns(Lead.company, Lead.email, Lead.country)
            )
        }
        quarantine = list(
            conn.execute(
                select(
                    QuarantineRow.event_id,
                    QuarantineRow.stage,
                    QuarantineRow.entity_id,
                    QuarantineRow.policy_version,
                    QuarantineRow.source_file,
                    QuarantineRow.source_row,
                )
            )
        )
        rules = {
            (r.event_id, r.rule_id)
            for r in conn.execute(select(QuarantineReason.event_id, QuarantineReason.rule_id))
        }
        audited = list(conn.scalars(select(AuditEntry.event_id)))

    assert set(leads) == {"L-100", "L-101", "L-102", "L-106"}
    assert {k: (v.phone_e164, v.phone_display) for k, v in leads.items()} == {
        "L-100": ("+14155550123", "+1-415-555-0123"),
        "L-101": ("+12125550199", "+1-212-555-0199"),
        "L-102": ("+16045550123", "+1-604-555-0123"),
        "L-106": ("+14155550126", "+1-415-555-0126"),
    }
    assert leads["L-101"].company == "US Navy Reserve"  # the later row of the same lead wins
    assert leads["L-101"].email == "grace@navy.mil"
    assert leads["L-102"].first_name == "Alan"
    assert leads["L-106"].country == "US"

    by_entity = {q.entity_id: q for q in quarantine if q.stage == "validation"}
    assert set(by_entity) == {"L-103", "L-104"}
    assert all(q.policy_version == POLICY_VERSION for q in by_entity.values())
    assert (by_entity["L-103"].event_id, "sales.email.format") in rules
    assert (by_entity["L-104"].event_id, "sales.company.required") in rules
    unreadable = [q for q in quarantine if q.stage == "connector"]
    assert [(q.source_file, q.source_row) for q in unreadable] == [("messy.csv", 9)]
    assert (unreadable[0].event_id, "csv.column_count") in rules

    clean_events = 5  # L-100, L-101 twice, L-102, L-106
    assert len(expected_events) == clean_events + len(quarantine)
    assert len(audited) == clean_events + 3
    assert set(audited) == expected_events
    result = verify_chain(engine, KEY.encode())
    assert result.ok, result
    assert result.checked == len(audited)


def test_kill_9_of_the_projection_worker_applies_every_event_once(
    bulk: Stack, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    expected_events = topic_event_ids(bulk.bootstrap)
    clean = read_topic(bulk.bootstrap, topics.CLEAN_SALES_LEADS)
    clean_keys = {m.key() for m in clean}
    clean_ids = {headers_of(m)["ce_id"] for m in clean}
    total = len(expected_events)
    assert total > BULK_ROWS
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HUB_HOME": str(tmp_path / "home"),
        "HUB_KAFKA_BOOTSTRAP": bulk.bootstrap,
        "HUB_SCHEMA_REGISTRY_URL": bulk.registry_url,
        "HUB_DATABASE_URL": db_url,
        "HUB_AUDIT_KEY": KEY,
        "HUB_CONFIG_FILE": str(tmp_path / "absent.yaml"),
        # Short: the broker delays a join by half of it, and the restarted worker's group
        # still holds the killed member until its session expires.
        "HUB_CONSUMER_SESSION_TIMEOUT_MS": "2000",
    }
    log_path = tmp_path / "projections.log"

    def spawn() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "projections.worker"],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    first = spawn()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            if audit_count(engine) > 0:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(30)
    assert first.returncode == -signal.SIGKILL, log_path.read_text(errors="replace")[-3000:]
    after_kill = audit_count(engine)
    assert 0 < after_kill < total, f"killed too late: {after_kill} of {total} applied"

    second = spawn()
    try:
        wait_for(lambda: audit_count(engine) >= total, timeout=90)
        time.sleep(1.0)  # anything applied twice would show now
    finally:
        code = stop_process(second)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]

    with engine.connect() as conn:
        audited = list(conn.scalars(select(AuditEntry.event_id)))
        lead_ids = set(conn.scalars(select(Lead.lead_id)))
        quarantine_rows = conn.scalar(select(func.count()).select_from(QuarantineRow))
    assert len(audited) == total
    assert len(set(audited)) == total
    assert set(audited) == expected_events
    assert {k.decode() for k in clean_keys if k is not None} == lead_ids
    assert quarantine_rows == total - len(clean_ids)
    result = verify_chain(engine, KEY.encode())
    assert result.ok, result
    assert result.checked == total
    print(  # the figures for the report (pytest -s)
        f"\nprojection worker killed with {after_kill} of {total} audit rows applied; "
        f"after restart {len(audited)} rows, {len(set(audited))} distinct event ids"
    )
