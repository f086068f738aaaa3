"""The spreadsheet connector run by the hub's ConnectorRunner, its cursor in the Kafka
offsets topic (OffsetStore), on the session broker and the hub's real schema registry:
no row skipped, none repeated, unreadable rows and files quarantined, a restart after
kill -9 resumes from the last committed cursor, an edited file is read again."""

from __future__ import annotations

import csv
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.spreadsheet.connector import SpreadsheetConfig, SpreadsheetConnector
from connectors.spreadsheet.reader import fingerprint
from hub.broker import ensure_topics
from hub.connect import ConnectorRunner
from hub.connect_offsets import OffsetStore
from hub.events import deterministic_id
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, hub_env, read_topic

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"
MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
HEADER = ["Lead ID", "First Name", "Last Name", "Email", "Phone", "Company", "Country"]
CONNECTOR = "leads-it"


@dataclass(frozen=True)
class Topics:
    raw: str
    quarantine: str
    offsets: str

    @classmethod
    def make(cls, bootstrap: str, suffix: str) -> Topics:
        t = cls(f"it.raw.{suffix}", f"it.quarantine.{suffix}", f"_it-offsets-{suffix}")
        ensure_topics(
            bootstrap,
            {t.raw: (3, {}), t.quarantine: (2, {}), t.offsets: (1, {"cleanup.policy": "compact"})},
        )
        return t


def build_runner(
    bootstrap: str,
    registry: SchemaRegistryClient,
    drop: Path,
    topics: Topics,
    *,
    chunk_size: int = 5000,
) -> ConnectorRunner:
    """The runner as the connect worker builds it, on the test's topics."""
    connector = SpreadsheetConnector(
        SpreadsheetConfig(
            name=CONNECTOR, drop_dir=drop, mapping=MAPPING, topic=topics.raw, settle_seconds=0
        )
    )
    offsets = OffsetStore(bootstrap, topics.offsets)
    offsets.load()
    return ConnectorRunner(
        connector,
        bootstrap=bootstrap,
        codec=AvroCodec(
            registry, topics.raw, load_schema_text(schema_path(SCHEMAS, "sales/LeadCaptured"))
        ),
        quarantine_codec=AvroCodec(
            registry,
            topics.quarantine,
            load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord")),
        ),
        offsets=offsets,
        chunk_size=chunk_size,
    )


def connector_main(argv: list[str]) -> None:
    """Entry of the connector subprocess: ``bootstrap registry drop raw quarantine offsets
    chunk_size``; reads the drop directory once."""
    bootstrap, registry_url, drop, raw, quarantine, offsets, chunk = argv
    registry = SchemaRegistryClient({"url": registry_url})
    runner = build_runner(
        bootstrap,
        registry,
        Path(drop),
        Topics(raw, quarantine, offsets),
        chunk_size=int(chunk),
    )
    runner.run_once()


def write_leads(path: Path, rows: int, *, bad_rows: frozenset[int] = frozenset()) -> list[int]:
    """A CSV of ``rows`` data records; the data records whose index is in ``bad_rows`` have
    one cell too many (unreadable). Returns the file row (CSV line) of every record."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            row = [
                f"L-{i:06d}",
                "Ada",
                f"Lovelace{i}",
                f"ada{i}@example.com",
                "(415) 555-0123",
                f"Analytical Engines {i % 97}",
                "US",
            ]
            if i in bad_rows:
                row.append("stray cell")
            writer.writerow(row)
    return list(range(2, rows + 2))  # line 1 is the header


def event_id(path: Path, row: int, fp: str | None = None) -> str:
    """The id the hub gives the event of ``row`` of ``path`` (fingerprint + row)."""
    fp = fp or fingerprint(path)
    return deterministic_id(CONNECTOR, f"{path.name}@{fp[:16]}:{row}")


def row_of(msg: Message) -> int:
    """The file row of a connector event, from its lineage header."""
    return int(headers_of(msg)["hub_source_record_id"].rsplit(":", 1)[1])


def decode_all(codec: AvroCodec, messages: list[Message]) -> list[dict[str, Any]]:
    return [codec.decode(m.value()) for m in messages]


def stored_offset(bootstrap: str, topics: Topics, file: str) -> dict[str, Any] | None:
    """The cursor as a restarted worker would find it (a fresh replay of the topic)."""
    store = OffsetStore(bootstrap, topics.offsets)
    store.load()
    return store.get(CONNECTOR, {"file": file})


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


@pytest.fixture
def topics(kafka_bootstrap: str, unique: str) -> Topics:
    return Topics.make(kafka_bootstrap, unique)


def test_every_good_row_once_and_unreadable_rows_quarantined(
    kafka_bootstrap: str, registry: SchemaRegistryClient, drop: Path, topics: Topics
) -> None:
    path = drop / "leads.csv"
    file_rows = write_leads(path, 300, bad_rows=frozenset({17, 250}))
    bad = {file_rows[17], file_rows[250]}
    good = [r for r in file_rows if r not in bad]
    runner = build_runner(kafka_bootstrap, registry, drop, topics, chunk_size=64)

    assert runner.run_once() == 300

    raw = read_topic(kafka_bootstrap, topics.raw, expect=len(good))
    ids = [headers_of(m)["ce_id"] for m in raw]
    assert len(ids) == len(good), "a row was skipped or published twice"
    assert set(ids) == {event_id(path, r) for r in good}
    assert sorted(row_of(m) for m in raw) == good
    values = decode_all(runner.codec, raw)
    assert {v["lead_id"] for v in values} == {f"L-{i:06d}" for i in range(300)} - {
        "L-000017",
        "L-000250",
    }
    assert all(m.key() == v["lead_id"].encode() for m, v in zip(raw, values, strict=True))

    quarantined = read_topic(kafka_bootstrap, topics.quarantine, expect=2)
    records = decode_all(runner.quarantine_codec, quarantined)
    assert len(records) == 2
    assert {(r["source_file"], r["source_row"]) for r in records} == {
        ("leads.csv", row) for row in bad
    }
    for record in records:
        assert record["stage"] == "connector"
        assert record["connector"] == CONNECTOR
        assert [reason["rule_id"] for reason in record["reasons"]] == ["csv.column_count"]
        assert record["payload"] is not None  # what could be read, for re-drive

    offset = stored_offset(kafka_bootstrap, topics, "leads.csv")
    assert offset is not None
    assert offset["done"] is True
    assert offset["version"] == fingerprint(path)
    assert offset["position"] == file_rows[-1]
    assert (offset["rows_read"], offset["published"], offset["quarantined"]) == (300, 298, 2)

    # Nothing new: a second pass reads nothing and publishes nothing.
    assert build_runner(kafka_bootstrap, registry, drop, topics).run_once() == 0


def test_close_releases_the_runners_kafka_clients(
    kafka_bootstrap: str, registry: SchemaRegistryClient, drop: Path, topics: Topics
) -> None:
    """A stopped connector leaves no client behind (librdkafka threads and sockets, which
    otherwise lived until a garbage collection), and what it committed stays committed."""
    write_leads(drop / "leads.csv", 10)
    runner = build_runner(kafka_bootstrap, registry, drop, topics)
    assert runner.run_once() == 10
    runner.close()
    runner.close()  # a second close does nothing
    for producer in (runner.producer, runner.offsets._producer):
        with pytest.raises(RuntimeError, match="closed"):
            producer.produce(topics.raw, b"x")
    again = build_runner(kafka_bootstrap, registry, drop, topics)
    try:
        assert again.run_once() == 0
    finally:
        again.close()


def _watch_offsets(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-watch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return consumer


def test_kill_9_mid_file_resumes_from_the_committed_cursor(
    kafka_bootstrap: str, registry_url: str, drop: Path, topics: Topics, tmp_path: Path
) -> None:
    # 40 chunks: the kill lands a few chunks in, far from the end, even on a fast machine.
    rows, chunk = 20_000, 500
    path = drop / "big.csv"
    bad_idx = frozenset({5, 10_001, 19_998})
    file_rows = write_leads(path, rows, bad_rows=bad_idx)
    bad = {file_rows[i] for i in bad_idx}
    good = [r for r in file_rows if r not in bad]
    argv = [
        kafka_bootstrap,
        registry_url,
        str(drop),
        topics.raw,
        topics.quarantine,
        topics.offsets,
        str(chunk),
    ]
    code = (
        "import sys; from tests.integration.test_connector_resume import connector_main; "
        "connector_main(sys.argv[1:])"
    )
    env = hub_env(kafka_bootstrap, registry_url, tmp_path / "home")
    log_path = tmp_path / "connector.log"

    def spawn() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-c", code, *argv],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    first = spawn()
    watch = _watch_offsets(kafka_bootstrap, topics.offsets)
    seen: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            msg = watch.poll(0.02)
            if msg is None or msg.error() is not None:
                continue
            value = msg.value()
            assert value is not None  # a cursor: nothing resets (tombstones) these offsets
            seen = json.loads(value)
            if seen["position"] > 0 and not seen["done"]:
                # Mid-chunk: some rows after this cursor are sent, maybe acknowledged.
                time.sleep(0.04)
                first.send_signal(signal.SIGKILL)
                break
    finally:
        watch.close()
        first.wait(30)
    assert first.returncode == -signal.SIGKILL, "the connector finished before it was killed"

    committed = stored_offset(kafka_bootstrap, topics, "big.csv")
    assert committed is not None
    assert not committed["done"], "the cursor says done: the kill came too late"
    cursor = committed["position"]
    assert 0 < cursor < file_rows[-1]
    assert committed["rows_read"] == cursor - 1  # rows 2..cursor were acknowledged

    before = read_topic(kafka_bootstrap, topics.raw)
    published_after_cursor = sum(1 for m in before if row_of(m) > cursor)
    # Everything up to the cursor is on the topic: the cursor came after the acks.
    assert {row_of(m) for m in before} >= {r for r in good if r <= cursor}

    second = spawn()
    assert second.wait(120) == 0, log_path.read_text(errors="replace")[-3000:]

    done = stored_offset(kafka_bootstrap, topics, "big.csv")
    assert done is not None
    assert done["done"] is True
    assert done["position"] == file_rows[-1]
    assert (done["rows_read"], done["published"], done["quarantined"]) == (rows, rows - 3, 3)

    # Each good row once: those published after the cursor before the kill are read back on
    # restart, not sent again. (Expecting them twice made every run whose kill came after
    # an unacknowledged send wait out read_topic's 60 s deadline.) A copy would still show
    # up: read_topic keeps reading until the topic is quiet.
    after = read_topic(kafka_bootstrap, topics.raw, expect=len(good))
    ids = Counter(headers_of(m)["ce_id"] for m in after)
    fp = fingerprint(path)
    assert set(ids) == {event_id(path, r, fp) for r in good}, "a row never reached the topic"
    duplicated_rows = sorted(row_of(m) for m in after if ids[headers_of(m)["ce_id"]] > 1)
    duplicates = sum(n - 1 for n in ids.values())
    assert all(r > cursor for r in duplicated_rows), "a row before the cursor was re-published"
    # What was published after the stored cursor is read back on restart and not sent
    # again: the restart repeats no row.
    assert duplicates == 0
    quarantined = read_topic(kafka_bootstrap, topics.quarantine, expect=3)
    assert {headers_of(m)["hub_source_record_id"].rsplit(":", 1)[1] for m in quarantined} == {
        str(r) for r in bad
    }
    print(  # the figures for the report (pytest -s)
        f"\nkill -9 at cursor row {cursor} of {file_rows[-1]} (chunk {chunk}): "
        f"{len(before)} raw events before restart, {published_after_cursor} of them after "
        f"the cursor; {duplicates} duplicates after restart; {len(after)} raw events total"
    )


def test_a_file_edited_after_import_is_read_again_as_a_new_version(
    kafka_bootstrap: str,
    registry: SchemaRegistryClient,
    drop: Path,
    topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = drop / "leads.csv"
    file_rows = write_leads(path, 40)
    old_fp = fingerprint(path)
    runner = build_runner(kafka_bootstrap, registry, drop, topics)
    assert runner.run_once() == 40
    first = read_topic(kafka_bootstrap, topics.raw, expect=40)
    assert {headers_of(m)["ce_id"] for m in first} == {event_id(path, r) for r in file_rows}

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[5] = lines[5].replace("Lovelace4", "Byron4")  # one changed row, same size order
    path.write_text("".join(lines), encoding="utf-8")
    new_fp = fingerprint(path)
    assert new_fp != old_fp

    with caplog.at_level(logging.WARNING, logger="connectors.spreadsheet.connector"):
        assert runner.run_once() == 40
    warnings = [r for r in caplog.records if "changed after import" in r.getMessage()]
    assert len(warnings) == 1
    assert "leads.csv" in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert runner.connector.files_modified == 1  # type: ignore[attr-defined]

    everything = read_topic(kafka_bootstrap, topics.raw, expect=80)
    assert len(everything) == 80
    new_ids = {headers_of(m)["ce_id"] for m in everything} - {headers_of(m)["ce_id"] for m in first}
    assert new_ids == {event_id(path, r, new_fp) for r in file_rows}
    changed = [
        v
        for m, v in zip(everything, decode_all(runner.codec, everything), strict=True)
        if headers_of(m)["ce_id"] in new_ids and v["lead_id"] == "L-000004"
    ]
    assert [v["last_name"] for v in changed] == ["Byron4"]
    offset = stored_offset(kafka_bootstrap, topics, "leads.csv")
    assert offset is not None
    assert (offset["version"], offset["done"], offset["rows_read"]) == (new_fp, True, 40)
    # Read once per version: a third pass has nothing to do.
    caplog.clear()
    assert runner.run_once() == 0
    assert not [r for r in caplog.records if "changed after import" in r.getMessage()]


def test_a_file_without_a_required_column_is_quarantined_and_the_next_one_read(
    kafka_bootstrap: str, registry: SchemaRegistryClient, drop: Path, topics: Topics
) -> None:
    bad = drop / "a_no_email.csv"
    bad.write_text("Lead ID,First Name,Last Name,Company\nL-1,Ada,Lovelace,Acme\n")
    good = drop / "b_leads.csv"
    file_rows = write_leads(good, 25)
    runner = build_runner(kafka_bootstrap, registry, drop, topics)

    assert runner.run_once() == 26

    quarantined = read_topic(kafka_bootstrap, topics.quarantine, expect=1)
    records = decode_all(runner.quarantine_codec, quarantined)
    assert len(records) == 1
    record = records[0]
    assert [r["rule_id"] for r in record["reasons"]] == ["file.unreadable"]
    assert record["source_file"] == "a_no_email.csv"
    assert record["stage"] == "connector"
    assert "email" in record["reasons"][0]["message"].lower()
    raw = read_topic(kafka_bootstrap, topics.raw, expect=25)
    assert {headers_of(m)["ce_id"] for m in raw} == {event_id(good, r) for r in file_rows}
    assert len(raw) == 25
    refused = stored_offset(kafka_bootstrap, topics, "a_no_email.csv")
    assert refused is not None
    assert (refused["done"], refused["quarantined"], refused["published"]) == (True, 1, 0)
    read = stored_offset(kafka_bootstrap, topics, "b_leads.csv")
    assert read is not None
    assert (read["done"], read["published"]) == (True, 25)


def test_a_crash_between_acknowledgement_and_cursor_commit_repeats_no_row(
    kafka_bootstrap: str, registry: SchemaRegistryClient, drop: Path, topics: Topics
) -> None:
    """The window kill -9 rarely hits: a chunk acknowledged by the broker, the process gone
    before its cursor is stored. The restarted runner reads what was published after the
    stored positions and does not send those rows again."""
    path = drop / "leads.csv"
    file_rows = write_leads(path, 400, bad_rows=frozenset({150}))
    good = [r for r in file_rows if r != file_rows[150]]
    first = build_runner(kafka_bootstrap, registry, drop, topics, chunk_size=100)
    real_commit = first.offsets.commit
    commits = 0

    def crash_on_third_commit(*args: object, **kwargs: object) -> None:
        nonlocal commits
        commits += 1
        if commits == 3:  # chunk 3 (rows 201-300) is acknowledged; its cursor never lands
            raise RuntimeError("simulated crash before the cursor was stored")
        real_commit(*args, **kwargs)  # type: ignore[arg-type]

    first.offsets.commit = crash_on_third_commit  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.run_once()
    first.producer.flush(10)
    stored = stored_offset(kafka_bootstrap, topics, "leads.csv")
    assert stored is not None
    assert stored["done"] is False
    cursor = stored["position"]
    published = read_topic(kafka_bootstrap, topics.raw, expect=1)
    assert any(row_of(m) > cursor for m in published), "the crash left rows past the cursor"

    second = build_runner(kafka_bootstrap, registry, drop, topics, chunk_size=100)
    second.run_once()

    raw = read_topic(kafka_bootstrap, topics.raw, expect=len(good))
    ids = Counter(headers_of(m)["ce_id"] for m in raw)
    assert set(ids) == {event_id(path, r) for r in good}, "a row was skipped"
    assert max(ids.values()) == 1, "a row was published twice"
    done = stored_offset(kafka_bootstrap, topics, "leads.csv")
    assert done is not None
    assert (done["done"], done["rows_read"], done["published"], done["quarantined"]) == (
        True,
        400,
        399,
        1,
    )
