"""Running a source connector: the hub, not the connector, owns the cursor.

The runner publishes each record of each stream with Avro + CloudEvents headers to the
stream's topic and commits the record's cursor to the offsets topic only after the broker
acknowledged it and every record before it. A record the connector could not read (or
whose value does not fit its stream's schema) becomes a quarantine record; the rest go on.
An error in the middle of a partition first commits what was acknowledged, then goes up
to the worker, which retries (``RetriableError``, honouring ``retry_after``) or fails the
connector (any other ``HubError``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter, Gauge

from hub.connect_offsets import OffsetStore
from hub.dlp.operators import KeyRing, seal
from hub.errors import FatalError, HubError, RetriableError, SchemaError
from hub.events import (
    AVRO_CONTENT_TYPE,
    H_CONNECTOR,
    H_DEPARTMENT,
    H_SOURCE_RECORD,
    H_TRACE_ID,
    SPECVERSION,
    EventMeta,
    Headers,
    deterministic_id,
    format_time,
)
from hub.kafka_read import read_until_quiet
from hub.quarantine import (
    STAGE_CONNECTOR,
    QuarantineReason,
    json_payload,
    quarantine_meta,
    quarantine_record,
)
from hub.sdk.streams import (
    SourceConnector,
    SourcePartition,
    SourceRecord,
    Stream,
)
from hub.serde import AvroCodec, load_schema_text, schema_path

log = logging.getLogger(__name__)

RECORDS = Counter(
    "hub_connector_records_total", "Records read by connectors", ["connector", "outcome"]
)
BYTES = Counter("hub_connector_bytes_total", "Value bytes published by connectors", ["connector"])
ERRORS = Counter("hub_connector_errors_total", "Connector errors", ["connector", "error_class"])
CURSOR_LAG = Gauge(
    "hub_connector_cursor_lag_seconds",
    "Age of the source change behind the last committed cursor",
    ["connector", "stream"],
)

CodecFor = Callable[[Stream], AvroCodec]


@dataclass(slots=True)
class _StreamOut:
    """What the runner needs per stream: its codec and the headers every event shares."""

    stream: Stream
    codec: AvroCodec
    static_headers: Headers


@dataclass(slots=True)
class _Progress:
    """Where a partition's read stands: the last resume point seen, and the counters."""

    cursor: dict[str, Any] | None
    counters: dict[str, int] = field(default_factory=dict)
    event_time: datetime | None = None
    stream: str | None = None


class ConnectorRunner:
    """Publishes what a connector reads; commits its cursor after acknowledgement."""

    def __init__(
        self,
        connector: SourceConnector,
        *,
        bootstrap: str,
        quarantine_codec: AvroCodec,
        offsets: OffsetStore,
        codec: AvroCodec | None = None,
        codec_for: CodecFor | None = None,
        chunk_size: int = 5000,
        commit_interval: float = 5.0,
        producer_config: dict[str, Any] | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        if codec is None and codec_for is None:
            raise ValueError("ConnectorRunner needs codec (one stream) or codec_for")
        self.connector = connector
        self.quarantine_codec = quarantine_codec
        self.offsets = offsets
        self.chunk_size = chunk_size
        self.commit_interval = commit_interval  # a slow source still commits this often
        self._last_commit = time.monotonic()
        self.keys = keys  # seals quarantined source records (they may hold personal data)
        self._codec = codec
        self._codec_for = codec_for
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery_error,
        }
        conf.update(producer_config or {})
        self.producer = Producer(conf)
        self._errors: list[str] = []
        self._meta: Consumer | None = None  # reads end offsets for the cursor's log
        self._closed = False
        self._bootstrap = bootstrap
        self._source = f"urn:crm-hub:connector:{connector.name}"
        self._outs: dict[str, _StreamOut] = {}
        # Partitions whose stored cursor this runner wrote: nobody published after it.
        self._committed_here: set[str] = set()
        self._default_stream: str | None = None
        self._records_ok = RECORDS.labels(connector.name, "published")
        self._records_bad = RECORDS.labels(connector.name, "quarantined")
        self._bytes = BYTES.labels(connector.name)
        # Counted locally and added to the metrics at each commit (per-record inc() cost
        # ~4 % of the connector's time).
        self._pending_ok = 0
        self._pending_bytes = 0
        self._since_poll = 0
        self._clock: bytes | None = None
        self._clock_uses = 0

    # -- streams ----------------------------------------------------------------------------

    def _out(self, stream: str | Stream | None) -> _StreamOut:
        """The stream's codec and headers (built on first use; a connector may hand a new
        ``Stream`` object under the same name when its source's schema changed)."""
        if isinstance(stream, Stream):
            out = self._outs.get(stream.name)
            if out is not None and out.stream is stream:
                return out
            return self._build_out(stream)
        name = stream or self._default_stream
        out = self._outs.get(name) if name is not None else None
        if out is not None:
            return out
        declared = list(self.connector.streams())
        if not declared:
            raise FatalError(f"connector {self.connector.name} declares no stream")
        if name is None:
            name = self._default_stream = declared[0].name
            out = self._outs.get(name)
            if out is not None:
                return out
        for candidate in declared:
            if candidate.name == name:
                return self._build_out(candidate)
        raise FatalError(f"connector {self.connector.name} emitted a record of unknown stream")

    def _build_out(self, stream: Stream) -> _StreamOut:
        if stream.schema is None:
            raise FatalError(
                f"stream {stream.name} of connector {self.connector.name} has no Avro schema: "
                "it can only be read standalone (crmhub connectors read)"
            )
        if self._codec_for is not None:
            codec = self._codec_for(stream)
        else:
            codec = cast(AvroCodec, self._codec)
        department = stream.department or self.connector.department
        out = _StreamOut(
            stream,
            codec,
            [
                ("ce_specversion", SPECVERSION.encode()),
                ("ce_source", self._source.encode()),
                ("ce_type", stream.event_type.encode()),
                ("content-type", AVRO_CONTENT_TYPE.encode()),
                (H_CONNECTOR, self.connector.name.encode()),
                (H_DEPARTMENT, department.encode()),
            ],
        )
        self._outs[stream.name] = out
        return out

    @property
    def codec(self) -> AvroCodec:
        """The codec of the connector's first stream."""
        return self._out(None).codec

    def topics(self) -> list[str]:
        """The topics of the connector's declared streams (with an Avro schema)."""
        return sorted({s.topic for s in self.connector.streams() if s.schema is not None})

    # -- delivery -----------------------------------------------------------------------------

    def _on_delivery_error(self, err: KafkaError | None, _msg: Message) -> None:
        # delivery.report.only.error: called for failed deliveries only (a Python callback
        # per acknowledged record cost ~14 % of the framework's time).
        if err is not None:
            self._errors.append(err.name())

    def _published_since(self, log: dict[str, int]) -> dict[str, str]:
        """Record ids (-> topic) published after the positions stored with the cursor: a
        run killed between acknowledgement and cursor commit left them on the log, and a
        restart must not publish them again. Reads only what came after those positions."""
        seen: dict[str, str] = {}
        partitions = [
            TopicPartition(where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1]), offset)
            for where, offset in log.items()
        ]
        group = f"hub-connect-resume-{self.connector.name}"
        for msg in read_until_quiet(self._bootstrap, partitions, group=group, quiet=1.0):
            headers = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
            for key, raw in headers:
                if key == H_SOURCE_RECORD and isinstance(raw, bytes):
                    seen[raw.decode()] = str(msg.topic())
        return seen

    # -- reading ------------------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Read every partition with new data to its end; returns records handled."""
        handled = 0
        for part in self.connector.partitions(self.offsets):
            if stop is not None and stop.is_set():
                break
            handled += self._run_partition(part, stop)
        return handled

    def _end_offsets(self) -> dict[str, int]:
        """The end offsets of the connector's topics now ("topic:partition" -> offset).

        Stored with every cursor: a worker that takes the partition over (after a crash)
        reads what was published after them and does not publish it again. Taken after the
        producer's flush, so every record before the cursor is below them; a watermark that
        lags the log (tansu's do) only makes that read start a little earlier."""
        if self._meta is None:
            self._meta = Consumer(
                {
                    "bootstrap.servers": self._bootstrap,
                    "group.id": f"hub-connect-meta-{self.connector.name}",
                    "enable.auto.commit": False,
                }
            )
        consumer = self._meta
        try:
            out: dict[str, int] = {}
            for topic in [*self.topics(), self.quarantine_codec.topic]:
                meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None:
                    continue
                for p in meta.partitions:
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=10, cached=False
                    )
                    out[f"{topic}:{p}"] = int(high)
            return out
        except KafkaException as exc:
            raise RetriableError(
                f"connector {self.connector.name}: cannot read the end offsets of its topics "
                f"({exc.args[0].name() if exc.args else 'error'})"
            ) from None

    def close(self) -> None:
        """Flush what is pending and release the clients: the producer, the offset store's
        (the runner owns the store it was given) and the connector's, if it holds any (an
        optional ``close()``). A producer with messages still undelivered after the flush is
        left to the garbage collector rather than closed: librdkafka's close would wait up
        to their 300 s timeout. Their cursors were never committed, so they are read again.
        A second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.producer.flush(30) == 0:
            self.producer.close()
        self.offsets.close()
        if self._meta is not None:
            self._meta.close()
            self._meta = None
        close = getattr(self.connector, "close", None)
        if callable(close):
            close()

    def _run_partition(self, part: SourcePartition, stop: threading.Event | None) -> int:
        progress = _Progress(part.cursor, {"rows_read": 0, "published": 0, "quarantined": 0})
        progress.counters.update(part.counters)
        counters = progress.counters
        in_chunk = 0
        handled = 0
        self.producer.flush(60)
        self._errors.clear()  # failures of an earlier read: that read stored nothing after them
        where = json.dumps(part.partition, sort_keys=True)
        already: dict[str, str] = {}
        if not part.log:  # never committed: remember where the topics end, first
            part.log = self._end_offsets()
            self._commit(part, progress, done=False)
        elif where not in self._committed_here:
            # Committed by another run (a crash, or a worker that lost the partition):
            # what it published after its last cursor is on the log; do not repeat it.
            already = self._published_since(part.log)
        records = self.connector.fetch(part)
        try:
            for rec in records:
                if not rec.checkpoint:
                    topic = already.get(rec.record_id)
                    if topic:
                        published = topic != self.quarantine_codec.topic
                    else:
                        published = self._publish(rec)
                    handled += 1
                    counters["rows_read"] += 1
                    counters["published" if published else "quarantined"] += 1
                    in_chunk += 1
                if rec.cursor is None:
                    continue
                progress.cursor = dict(rec.cursor)
                progress.event_time = rec.event_time or progress.event_time
                progress.stream = rec.stream.name if isinstance(rec.stream, Stream) else rec.stream
                if in_chunk >= self.chunk_size or (
                    in_chunk and time.monotonic() - self._last_commit >= self.commit_interval
                ):
                    self._commit(part, progress, done=False)
                    in_chunk = 0
                    if stop is not None and stop.is_set():
                        return handled
        except HubError as exc:
            ERRORS.labels(self.connector.name, type(exc).__name__).inc()
            if progress.cursor is not None and progress.cursor != part.cursor and not self._errors:
                try:  # keep what was acknowledged (never past a failed delivery: see _commit)
                    self._commit(part, progress, done=False)
                except HubError:
                    log.warning("connector %s: progress not stored", self.connector.name)
            raise
        finally:
            close = getattr(records, "close", None)
            if callable(close):
                close()
        self._commit(part, progress, done=True)
        return handled

    def _now(self) -> bytes:
        """ce_time, refreshed every 256 records (formatting it per record cost ~5 % of the
        connector's time; a capture time a few milliseconds early is still truthful)."""
        self._clock_uses += 1
        if self._clock is None or self._clock_uses >= 256:
            self._clock = format_time(datetime.now(UTC)).encode()
            self._clock_uses = 0
        return self._clock

    def _publish(self, rec: SourceRecord) -> bool:
        """Produce one record; True when it went to its stream's topic, False to quarantine."""
        event_id = deterministic_id(self.connector.name, rec.record_id)
        if not rec.reasons and rec.value is not None:
            out = self._out(rec.stream)
            try:
                value = out.codec.encode(rec.value)
            except SchemaError as exc:
                reason = QuarantineReason("schema.encode", None, exc.message)
                rec = replace(
                    rec, reasons=(reason,), raw=json_payload(rec.value), error_class="SchemaError"
                )
            else:
                key = (rec.key or rec.record_id).encode()
                eid = event_id.encode()
                headers = [
                    *out.static_headers,
                    ("ce_id", eid),
                    ("ce_time", self._now()),
                    ("ce_subject", key),
                    (H_SOURCE_RECORD, rec.record_id.encode()),
                    (H_TRACE_ID, eid),
                ]
                self._produce(out.codec.topic, key, value, headers)
                self._pending_ok += 1
                self._pending_bytes += len(value)
                return True
        self._publish_quarantine(rec, event_id)
        return False

    def _stream_department(self, rec: SourceRecord) -> str:
        if isinstance(rec.stream, Stream):
            return rec.stream.department or self.connector.department
        return self.connector.department

    def _publish_quarantine(self, rec: SourceRecord, event_id: str) -> None:
        conn = self.connector
        now = datetime.now(UTC)
        payload, fmt = rec.raw, "json"
        if payload is not None and self.keys is not None:
            payload, fmt = seal(self.keys, payload, aad=event_id.encode()), "json+sealed:default"
        department = self._stream_department(rec)
        record = quarantine_record(
            stage=STAGE_CONNECTOR,
            reasons=rec.reasons,
            origin_id=event_id,
            payload=payload,
            payload_format=fmt,
            department=department,
            connector=conn.name,
            source_file=rec.source_file,
            source_row=rec.position,
            entity_id=rec.key,
            now=now,
            source_cursor=(
                json.dumps(dict(rec.cursor), sort_keys=True)
                if rec.cursor is not None and rec.source_file is None
                else None
            ),
            error_class=rec.error_class,
        )
        lineage = {
            H_CONNECTOR: conn.name,
            H_DEPARTMENT: department,
            H_SOURCE_RECORD: rec.record_id,
            H_TRACE_ID: event_id,
        }
        meta = quarantine_meta(record, None, self._source)
        meta = EventMeta(meta.id, meta.source, meta.type, meta.subject, now, lineage=lineage)
        value = self.quarantine_codec.encode(record)
        key = (rec.key or rec.record_id).encode()
        self._produce(self.quarantine_codec.topic, key, value, meta.to_headers())
        self._records_bad.inc()

    def _produce(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        while True:
            try:
                self.producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,  # type: ignore[arg-type]  # a list of pairs is accepted
                )
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(0.1)
        self._since_poll += 1
        if self._since_poll >= 1000:
            self.producer.poll(0)
            self._since_poll = 0

    def _commit(self, part: SourcePartition, progress: _Progress, *, done: bool) -> None:
        remaining = self.producer.flush(60)
        self._records_ok.inc(self._pending_ok)
        self._bytes.inc(self._pending_bytes)
        self._pending_ok = self._pending_bytes = 0
        if remaining or self._errors:
            # The failed records are gone from the producer's queue: no cursor may be stored
            # after them in this read. The errors stay until the next read of the partition,
            # which starts again from the last stored cursor.
            errors = self._errors
            ERRORS.labels(self.connector.name, "RetriableError").inc()
            raise RetriableError(
                f"connector {self.connector.name}: {remaining} records not acknowledged "
                f"({', '.join(sorted(set(errors))) or 'timeout'}); will resume from the last cursor"
            )
        offset: dict[str, Any] = {
            **(progress.cursor or {}),
            "done": done,
            **progress.counters,
            "log": {**part.log, **self._end_offsets()},
        }
        self.offsets.commit(self.connector.name, part.partition, offset)
        self._last_commit = time.monotonic()
        self._committed_here.add(json.dumps(part.partition, sort_keys=True))
        part.cursor = progress.cursor
        if progress.event_time is not None:
            lag = max(0.0, time.time() - progress.event_time.timestamp())
            stream = progress.stream or self._default_stream or "default"
            CURSOR_LAG.labels(self.connector.name, stream).set(lag)


def stream_codecs(registry: SchemaRegistryClient, schemas_dir: Path) -> CodecFor:
    """Codecs for streams: a schema named under ``schemas_dir`` or given inline, registered
    under the stream topic's subject (an incompatible change fails with the reason)."""
    cache: dict[tuple[str, str], AvroCodec] = {}

    def codec_for(stream: Stream) -> AvroCodec:
        if isinstance(stream.schema, str):
            text = load_schema_text(schema_path(schemas_dir, stream.schema))
        else:
            text = json.dumps(stream.schema, sort_keys=True)
        codec = cache.get((stream.topic, text))
        if codec is None:
            codec = cache[(stream.topic, text)] = AvroCodec(registry, stream.topic, text)
        _ = codec.schema_id  # registered now: a refused schema fails here, with the reason
        return codec

    return codec_for


def retry_delay(exc: RetriableError, backoff: float) -> float:
    """How long to wait after a retriable error: the source's own ``retry_after`` when it
    gave one (a rate limit), else the worker's exponential backoff."""
    if exc.retry_after is not None and exc.retry_after > 0:
        return min(exc.retry_after, 300.0)
    return backoff


def run_forever(
    runner: ConnectorRunner, stop: threading.Event, *, poll_interval: float = 1.0
) -> None:
    """The connect worker loop: poll for new data; back off on retriable errors."""
    backoff = 1.0
    while not stop.is_set():
        try:
            runner.run_once(stop)
            backoff = 1.0
            stop.wait(poll_interval)
        except RetriableError as exc:
            delay = retry_delay(exc, backoff)
            log.warning("%s (retrying in %.0fs)", exc.message, delay)
            stop.wait(delay)
            backoff = min(backoff * 2, 30.0)
        except HubError as exc:
            ERRORS.labels(runner.connector.name, type(exc).__name__).inc()
            log.error("connector %s: %s", runner.connector.name, exc.message)
            stop.wait(poll_interval)
    runner.close()


__all__ = [
    "CodecFor",
    "ConnectorRunner",
    "SourceConnector",
    "SourcePartition",
    "SourceRecord",
    "Stream",
    "retry_delay",
    "run_forever",
    "stream_codecs",
]
