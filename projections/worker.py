"""The projection worker: consumes the clean topics of every department (sales leads,
marketing contacts, service cases, HR employees and erasures), the quarantine and the
quarantine re-drive topics with confluent-kafka and applies each batch to the read model
and audit trail.

Positions live in the database, written in the same transaction as the rows; on every
partition assignment the consumer seeks to them (or to the beginning). Committing offsets to
Kafka afterwards is best effort, for lag monitoring only. A message that cannot be decoded
becomes a ``decode`` quarantine row and its offset advances; a database or registry failure
rolls the batch back and retries it, with back-off, until it succeeds or the worker stops.

An HR erasure queues the vault keys it takes out of the token vault (the erased employee's
tokens: `DlpVaultEntry`) in an outbox table, in its own transaction; the worker then
publishes a tombstone for each on the vault's compacted topic and takes them off the queue
once the broker has them all (`publish_tombstones`). A failure leaves them queued for the
next try: a tombstone sent twice deletes nothing more.

Run it as ``python -m projections.worker`` (settings from ``HUB_*``/``crmhub.yaml``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter, start_http_server
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from hub.broker import ensure_topics
from hub.errors import ConfigError, HubError
from hub.gc_policy import streaming_gc
from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path
from hub.settings import Settings, load_settings
from hub.topics import DEFAULT_PARTITIONS, TOPIC_SPECS
from projections.db import make_engine, migrate
from projections.decode import MessageDecoder
from projections.store import (
    ApplyResult,
    Item,
    Position,
    ProjectionStore,
    ProjectionTopics,
    UndecodableEvent,
)

log = logging.getLogger(__name__)

EVENTS = Counter(
    "hub_projection_events",
    "Messages handled by the projections, by topic and outcome",
    ["topic", "outcome"],  # applied | skipped | undecodable
)
BATCHES = Counter("hub_projection_batches", "Batches committed by the projections")
ERRORS = Counter("hub_projection_errors", "Projection errors, by class", ["error"])
TOMBSTONES = Counter(
    "hub_projection_vault_tombstones",
    "Tombstones published on the token vault's topic for tokens an HR erasure removed",
)

MAX_BACKOFF = 30.0
TOMBSTONE_BATCH = 500  # outbox rows read per round
TOMBSTONE_TIMEOUT = 15.0  # seconds the broker has to take a round's tombstones
TOMBSTONE_RETRY = 10.0  # seconds before a failed round is tried again
DECODE_SLICE = 20  # messages decoded between two GIL releases (~0.5 ms)


@dataclass
class WorkerStats:
    """What this worker instance did (for tests and the status page)."""

    received: int = 0
    applied: int = 0
    skipped: int = 0
    undecodable: int = 0
    batches: int = 0


def describe_error(exc: BaseException) -> str:
    """Class and driver code of an error, never its parameters (SQLAlchemy's text quotes
    the bound values, which may be personal data)."""
    name = exc.__class__.__name__
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
        return f"{name}/{orig.__class__.__name__}" + (f" ({code})" if code else "")
    if isinstance(exc, HubError):
        return f"{name}: {exc.message}"
    return name


class ProjectionWorker:
    """Consumes ``topics`` (``ProjectionTopics``: leads, quarantine, re-drives, marketing
    contacts, service cases, HR employees and erasures, the DLP token vault) into the
    projection store."""

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Sequence[str] = ProjectionTopics(),
        group_id: str = "crm-projections",
        batch_size: int = 2000,
        registry: SchemaRegistryClient | None = None,
        poll_timeout: float = 0.5,
    ) -> None:
        self.settings = settings
        self.topics = ProjectionTopics(*topics)
        self.group_id = group_id
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.engine = make_engine(settings.effective_database_url)
        self.store = ProjectionStore(
            self.engine, audit_key=settings.audit_key_bytes(), topics=self.topics
        )
        # A registry client made here is owned (and closed) by this worker.
        self._owned_registry = (
            None if registry is not None else registry_client(settings.effective_registry_url)
        )
        reg = registry or self._owned_registry
        assert reg is not None
        self.codecs = {
            self.topics.leads: AvroCodec(
                reg,
                self.topics.leads,
                load_schema_text(schema_path(settings.schemas_dir, "sales/Lead")),
            ),
            self.topics.quarantine: AvroCodec(
                reg,
                self.topics.quarantine,
                load_schema_text(schema_path(settings.schemas_dir, "common/QuarantineRecord")),
            ),
            self.topics.redrives: AvroCodec(
                reg,
                self.topics.redrives,
                load_schema_text(schema_path(settings.schemas_dir, "common/QuarantineRedriven")),
            ),
            self.topics.contacts: AvroCodec(
                reg,
                self.topics.contacts,
                load_schema_text(schema_path(settings.schemas_dir, "marketing/Contact")),
            ),
            self.topics.cases: AvroCodec(
                reg,
                self.topics.cases,
                load_schema_text(schema_path(settings.schemas_dir, "service/TicketChanged")),
            ),
            self.topics.employees: AvroCodec(
                reg,
                self.topics.employees,
                load_schema_text(schema_path(settings.schemas_dir, "hr/EmployeeChanged")),
            ),
            self.topics.email_events: AvroCodec(
                reg,
                self.topics.email_events,
                load_schema_text(schema_path(settings.schemas_dir, "marketing/EmailEvent")),
            ),
            self.topics.erasures: AvroCodec(
                reg,
                self.topics.erasures,
                load_schema_text(schema_path(settings.schemas_dir, "hr/EmployeeErased")),
            ),
            self.topics.vault: AvroCodec(
                reg,
                self.topics.vault,
                load_schema_text(schema_path(settings.schemas_dir, "dlp/VaultEntry")),
            ),
        }
        self.decoder = MessageDecoder(self.codecs, compacted=[self.topics.vault])
        self.stats = WorkerStats()
        self._producer: Producer | None = None
        # Publish queued tombstones (any left by an earlier run, then an erasure's) once
        # the time comes (time.monotonic()); None: nothing queued.
        self._tombstones_at: float | None = 0.0

    # -- the loop -----------------------------------------------------------------------
    def consumer_config(self) -> dict[str, Any]:
        session = self.settings.consumer_session_timeout_ms
        return {
            **self.settings.kafka_common(),
            "group.id": self.group_id,
            "client.id": f"{self.group_id}-worker",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # The embedded broker delays a group join by half the session timeout.
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(100, min(1000, session // 3)),
            "logger": logging.getLogger("projections.kafka"),
        }

    def run(self, stop: threading.Event) -> None:
        """Consume and decode in a reader thread while this thread writes the previous
        batch: decoding is Python work, a database write mostly waits on I/O (both drivers
        release the GIL), so the two overlap. The queue holds at most two decoded batches;
        positions are stored with each batch's rows, so a batch decoded but not written
        when the worker stops is simply read again next time."""
        self._ensure_topics()
        consumer = Consumer(self.consumer_config())
        consumer.subscribe(list(self.topics), on_assign=self._on_assign)
        log.info("projection worker consuming %s as %s", ", ".join(self.topics), self.group_id)
        batches: queue.Queue[list[Item]] = queue.Queue(maxsize=2)
        commits: queue.SimpleQueue[dict[Position, int]] = queue.SimpleQueue()
        reading_done = threading.Event()
        reader = threading.Thread(
            target=self._read,
            args=(consumer, batches, commits, stop, reading_done),
            daemon=True,
        )
        reader.start()
        try:
            while not stop.is_set():
                try:
                    items = batches.get(timeout=self.poll_timeout)
                except queue.Empty:
                    if reading_done.is_set():
                        break
                    self._tombstones_if_due()
                    continue
                result = self._apply_until_done(items, stop)
                if result is None:  # stopped while retrying: nothing stored, replays later
                    break
                # The consumer is the reader's: calls from two threads deadlock in librdkafka.
                commits.put(result.positions)
                if result.tombstones_queued and self._tombstones_at is None:
                    self._tombstones_at = 0.0
                self._tombstones_if_due()
        finally:
            stop.set()
            reader.join(timeout=30)
            consumer.close()
            if self._producer is not None:
                self._producer.flush(1.0)  # what is left stays queued in the outbox
            self.engine.dispose()
            if self._owned_registry is not None:
                self._owned_registry.close()
            log.info("projection worker stopped")

    def _tombstones_if_due(self) -> None:
        at = self._tombstones_at
        if at is not None and time.monotonic() >= at:
            done = self.publish_tombstones()
            self._tombstones_at = None if done else time.monotonic() + TOMBSTONE_RETRY

    def tombstone_config(self) -> dict[str, Any]:
        return {
            **self.settings.kafka_common(),
            "client.id": f"{self.group_id}-tombstones",
            # The processors write the vault's entries with Faust (aiokafka's default
            # partitioner: murmur2 of the key, as the Java client). A tombstone must land on
            # its entry's partition, or compaction never drops the entry: librdkafka's own
            # default (CRC32) put three in four elsewhere.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": int(TOMBSTONE_TIMEOUT * 1000),
            "logger": logging.getLogger("projections.kafka"),
        }

    def publish_tombstones(self) -> bool:
        """Publish a tombstone on the token vault's topic for each vault key in the outbox
        (`ProjectionStore.queued_tombstones`), a round of `TOMBSTONE_BATCH` at a time, and
        take a round off the queue once the broker has acknowledged all of it. True when
        the queue is empty; False when a round failed (broker or database), which stays
        queued for the next try."""
        while True:
            try:
                round_ = self.store.queued_tombstones(TOMBSTONE_BATCH)
            except SQLAlchemyError as exc:
                ERRORS.labels("tombstone_queue").inc()
                log.warning("vault tombstones not read (%s); retrying", describe_error(exc))
                return False
            if not round_.keys:
                return True
            reason = self._tombstones(round_.publish)
            if reason is not None:
                ERRORS.labels("tombstone_publish").inc()
                log.warning("vault tombstones not published (%s); retrying", reason)
                return False
            try:
                self.store.tombstones_published(round_)
            except SQLAlchemyError as exc:  # published: sent again next time, harmlessly
                ERRORS.labels("tombstone_queue").inc()
                log.warning("vault tombstones not dequeued (%s); retrying", describe_error(exc))
                return False
            TOMBSTONES.inc(len(round_.publish))
            log.info("published %d vault tombstone(s) for erased employees", len(round_.publish))
            if len(round_.keys) < TOMBSTONE_BATCH:
                return True

    def _tombstones(self, keys: list[str]) -> str | None:
        """Produce a tombstone for each vault key and wait for the broker: why not all of them
        were acknowledged, or None."""
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)

        try:
            if self._producer is None:
                self._producer = Producer(self.tombstone_config())
            for key in keys:
                self._producer.produce(
                    self.topics.vault, key=key.encode(), value=None, on_delivery=delivered
                )
        except (KafkaException, BufferError) as exc:  # a bad config, a full queue: retry later
            self._producer = None
            return f"{exc.__class__.__name__}: {exc.args[0] if exc.args else ''}"
        left = self._producer.flush(TOMBSTONE_TIMEOUT)
        if not failed and not left:
            return None
        self._producer = None  # the next round starts with a new one (and its settings)
        return str(failed[0].str()) if failed else f"{left} not acknowledged in time"

    def _ensure_topics(self) -> None:
        """Create a missing topic of the projection (the re-drives topic exists only once a
        first re-drive ran on a hub set up by an older version): subscribed to an absent
        topic, the consumer would report it as an error on every poll."""
        specs = {t: TOPIC_SPECS.get(t, (DEFAULT_PARTITIONS, {})) for t in self.topics}
        try:
            ensure_topics(self.settings.require_bootstrap(), specs)
        except (HubError, KafkaException) as exc:  # consuming reports the broker's state
            reason = exc.message if isinstance(exc, HubError) else exc.__class__.__name__
            log.warning("cannot create the projection's topics: %s", reason)

    def _read(
        self,
        consumer: Consumer,
        batches: queue.Queue[list[Item]],
        commits: queue.SimpleQueue[dict[Position, int]],
        stop: threading.Event,
        done: threading.Event,
    ) -> None:
        try:
            while not stop.is_set():
                while not commits.empty():  # best effort: the DB holds the real positions
                    self._commit(consumer, commits.get_nowait())
                try:
                    messages = consumer.consume(self.batch_size, timeout=self.poll_timeout)
                except KafkaException as exc:
                    ERRORS.labels("broker").inc()
                    log.warning("consume failed: %s", exc.args[0] if exc.args else exc)
                    stop.wait(1.0)
                    continue
                items = self._decode(self._usable(messages))
                del messages  # the client's message objects (and their headers) go now
                if not items:
                    continue
                while not stop.is_set():
                    try:
                        batches.put(items, timeout=self.poll_timeout)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # noqa: BLE001 - a dead reader must stop the worker, not hang it
            # Class name only: an unexpected exception's text may quote a value.
            log.error("projection reader failed (%s); stopping", exc.__class__.__name__)
            stop.set()
        finally:
            done.set()

    def _decode(self, messages: list[Message]) -> list[Item]:
        """Decode, giving the GIL up every ``DECODE_SLICE`` messages. CPython hands the
        GIL to a thread that asks for it only after the switch interval (5 ms) unless the
        holder lets go; the writer thread asks for it after each of its ~15 database
        calls per batch, and without this it waited while this thread decoded: measured
        66-71 µs of wall time per event applied for 26-40 µs of CPU (#3)."""
        items: list[Item] = []
        for start in range(0, len(messages), DECODE_SLICE):
            items += self.decoder.decode_all(messages[start : start + DECODE_SLICE])
            time.sleep(0)  # releases the GIL; the writer, if waiting, takes it now
        return items

    def _usable(self, messages: list[Message]) -> list[Message]:
        usable: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is None:
                usable.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                ERRORS.labels("broker").inc()
                log.warning("broker error: %s", err.str())
        return usable

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            positions = self.store.positions()
        except SQLAlchemyError as exc:
            # Fall back to Kafka's committed offsets: replaying is harmless (idempotent).
            ERRORS.labels(exc.__class__.__name__).inc()
            log.warning(
                "cannot read stored positions (%s); using committed offsets", describe_error(exc)
            )
            for tp in partitions:
                tp.offset = OFFSET_STORED
        else:
            for tp in partitions:
                tp.offset = positions.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        log.info(
            "assigned %s",
            ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions) or "nothing",
        )
        consumer.assign(partitions)

    def _apply_until_done(self, items: list[Item], stop: threading.Event) -> ApplyResult | None:
        """Apply; a database that is away is waited for (back off, retry the same batch);
        a batch the database refuses for its data is split so the refused events go to
        quarantine and the partition moves on (never a batch retried forever)."""
        try:
            result = self.store.apply(items)
        except (DataError, IntegrityError) as exc:  # the values, not the database
            ERRORS.labels(exc.__class__.__name__).inc()
            log.warning(
                "batch of %d refused by the database (%s); isolating the events it refuses",
                len(items),
                describe_error(exc),
            )
            return self._apply_one_by_one(items, stop)
        except Exception as exc:  # noqa: BLE001 - the database may be away: wait for it
            ERRORS.labels(exc.__class__.__name__).inc()
            log.warning("batch of %d not applied (%s); retrying", len(items), describe_error(exc))
            return self._retry(items, stop)
        self._record(result)
        return result

    def _apply_one_by_one(self, items: list[Item], stop: threading.Event) -> ApplyResult | None:
        """Each event in its own transaction, in order; one the database refuses becomes a
        quarantine row (stage ``projection``, built only from our own safe values) so its
        offset can advance."""
        merged = ApplyResult()
        queued = 0
        for item in items:
            try:
                result = self.store.apply([item])
            except (DataError, IntegrityError) as exc:
                ERRORS.labels("refused_event").inc()
                log.warning(
                    "event %s[%d]@%d refused by the database (%s); quarantined",
                    item.topic,
                    item.partition,
                    item.offset,
                    describe_error(exc),
                )
                poison = UndecodableEvent(
                    item.topic,
                    item.partition,
                    item.offset,
                    None,  # the key may be what the database refused
                    rule_id="projection.refused",
                    message=f"the read model refused the event ({exc.__class__.__name__})",
                    stage="projection",
                )
                stored = self._retry([poison], stop)
                if stored is None:
                    return None
                merged.positions.update(stored.positions)
                continue
            self._record(result)
            merged.positions.update(result.positions)
            queued += result.tombstones_queued
        # an erasure's queued tokens are published after the batch, as after any other
        return dataclasses.replace(merged, tombstones_queued=queued)

    def _retry(self, items: list[Item], stop: threading.Event) -> ApplyResult | None:
        """Back off and retry until the database takes the batch (or we are stopped)."""
        delay = 0.5
        while True:
            try:
                result = self.store.apply(items)
            except Exception as exc:  # noqa: BLE001 - never skip a batch; retry it
                ERRORS.labels(exc.__class__.__name__).inc()
                log.warning(
                    "batch of %d not applied (%s); retrying in %.1fs",
                    len(items),
                    describe_error(exc),
                    delay,
                )
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self._record(result)
            return result

    def _record(self, result: ApplyResult) -> None:
        self.stats.received += result.received
        self.stats.applied += result.audited
        self.stats.skipped += result.skipped
        self.stats.undecodable += result.undecodable
        self.stats.batches += 1
        BATCHES.inc()
        for (topic, outcome), n in result.outcomes.items():
            EVENTS.labels(topic, outcome).inc(n)

    def _commit(self, consumer: Consumer, positions: dict[Position, int]) -> None:
        offsets = [TopicPartition(t, p, n) for (t, p), n in positions.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("offset commit to Kafka failed (positions are in the DB): %s", exc)


def run_projection_worker(settings: Settings) -> int:
    """Entry point of the projections process: migrate, then consume until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    migrate(settings.effective_database_url)
    port = os.environ.get("HUB_METRICS_PORT")
    if port:
        start_http_server(int(port))
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with streaming_gc():
        ProjectionWorker(settings).run(stop)
    return 0


def main() -> int:
    try:
        return run_projection_worker(load_settings())
    except ConfigError as exc:
        print(f"projections: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
