"""The registry's state, kept in a compacted Kafka topic (``_schemas``) like Confluent's.

Records (JSON key -> JSON value, a null value is a tombstone)::

    {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}
        -> {"subject":S,"version":V,"id":ID,"schemaType":"AVRO","schema":TEXT,"deleted":false}
    {"keytype":"CONFIG","subject":S or null,"magic":0}
        -> {"compatibilityLevel":"BACKWARD"}

Other key types a real Confluent registry writes (NOOP, DELETE_SUBJECT, MODE, ...) are
skipped on replay, so the store can start on a topic written by one.

``start()`` reads the topic from the beginning to its high watermark and rebuilds the
state in memory; reads are then served from memory. A write is produced, flushed and
acknowledged by the broker before the in-memory state changes, so an answer never
reports something the log does not hold.

**Single writer.** Exactly one process may write a given topic through this store (the
hub's API process). Version numbers and global ids are assigned from this process's
memory (max + 1) and the store does not follow records other processes append after
``start()``; two writers would hand out the same ids. Within the process, writes are
serialised by a lock and are safe from many threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage

from hub import topics
from hub.broker import ensure_topics
from hub.errors import RetriableError
from hub.registry.compat import (
    AVRO,
    DEFAULT_LEVEL,
    CompatibilityLevel,
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    ParsedSchema,
    SchemaNotFoundError,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    compatibility_problems,
    parse_schema,
)

log = logging.getLogger(__name__)

_SCHEMA_KEY = "SCHEMA"
_CONFIG_KEY = "CONFIG"


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a subject."""

    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``GET /subjects/{s}/versions/{v}`` answer."""
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.schema,
        }


def _schema_key(subject: str, version: int) -> bytes:
    return _dump({"keytype": _SCHEMA_KEY, "subject": subject, "version": version, "magic": 1})


def _config_key(subject: str | None) -> bytes:
    return _dump({"keytype": _CONFIG_KEY, "subject": subject, "magic": 0})


def _schema_value(entry: SchemaVersion) -> bytes:
    return _dump(
        {
            "subject": entry.subject,
            "version": entry.version,
            "id": entry.schema_id,
            "schemaType": AVRO,
            "schema": entry.schema,
            "deleted": entry.deleted,
        }
    )


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class SchemaStore:
    """Subjects, versions, global schema ids and compatibility config, backed by Kafka."""

    def __init__(
        self, bootstrap: str, topic: str = topics.SCHEMAS, *, write_timeout: float = 10.0
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.write_timeout = write_timeout
        self._state_lock = threading.RLock()  # short: guards the dicts below
        self._write_lock = threading.Lock()  # long: one write (produce + flush) at a time
        self._subjects: dict[str, dict[int, SchemaVersion]] = {}
        self._schemas: dict[int, ParsedSchema] = {}
        self._ids_by_canonical: dict[str, int] = {}
        self._config: dict[str | None, CompatibilityLevel] = {}
        self._max_id = 0
        self._producer: Producer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Create the topic if missing and replay it to its end. Raises RetriableError when
        the broker does not answer within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        spec = topics.TOPIC_SPECS[topics.SCHEMAS]
        ensure_topics(self.bootstrap, {self.topic: spec})
        self._replay(deadline)
        self._producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "linger.ms": 0,
                "enable.idempotence": False,
            }
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.write_timeout)
            self._producer = None

    def _replay(self, deadline: float) -> None:
        # No group subscription: the embedded broker delays every group join (see DESIGN.md).
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"hub-schema-store-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )
        try:
            high = self._high_watermark(consumer, deadline)
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            position = -1
            at_end = high == 0
            while not at_end and position + 1 < high:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RetriableError(
                        f"schema store: replay of {self.topic} stopped at offset "
                        f"{position + 1} of {high} (timeout)"
                    )
                # consume() waits for `wanted` messages or the timeout, so ask for exactly
                # what is left (fewer arrive only where compaction left gaps, then EOF ends it)
                wanted = max(1, min(500, high - position - 1))
                for message in consumer.consume(wanted, timeout=min(remaining, 0.5)):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end = True
                            continue
                        raise RetriableError(f"schema store: cannot read {self.topic}: {error}")
                    self._apply_record(message)
                    position = max(position, message.offset() or 0)
        finally:
            consumer.close()
        with self._state_lock:
            log.info(
                "schema store: replayed %s to offset %d: %d subjects, %d schemas",
                self.topic,
                high,
                len(self._subjects),
                len(self._schemas),
            )

    def _high_watermark(self, consumer: Consumer, deadline: float) -> int:
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=2.0, cached=False
                )
                return int(high)
            except KafkaException as exc:  # topic metadata may lag its creation
                last = str(exc)
                time.sleep(0.1)
        raise RetriableError(f"schema store: no watermark for {self.topic} ({last})")

    def _apply_record(self, message: KafkaMessage) -> None:
        raw_key, raw_value = message.key(), message.value()
        try:
            key = json.loads(raw_key) if raw_key else None
            value = json.loads(raw_value) if raw_value else None
        except ValueError:
            log.warning("schema store: skipped a record that is not JSON at %s", message.offset())
            return
        if not isinstance(key, dict):
            return
        keytype = key.get("keytype")
        if keytype == _SCHEMA_KEY and isinstance(value, dict):
            try:
                entry = SchemaVersion(
                    subject=str(value["subject"]),
                    version=int(value["version"]),
                    schema_id=int(value["id"]),
                    schema=str(value["schema"]),
                    deleted=bool(value.get("deleted", False)),
                )
            except (KeyError, TypeError, ValueError):
                log.warning(
                    "schema store: skipped a malformed SCHEMA record at %s", message.offset()
                )
                return
            self._apply_schema(entry)
        elif keytype == _SCHEMA_KEY and value is None:
            version = key.get("version")
            if isinstance(version, int):
                self._apply_tombstone(str(key.get("subject")), version)
        elif keytype == _CONFIG_KEY:
            subject = key.get("subject")
            level = value.get("compatibilityLevel") if isinstance(value, dict) else None
            try:
                parsed = None if level is None else CompatibilityLevel.parse(level)
            except InvalidCompatibilityLevelError:
                log.warning("schema store: skipped an unknown level at %s", message.offset())
                return
            self._apply_config(subject if isinstance(subject, str) else None, parsed)

    # --- state changes (after the write is acknowledged) ---------------------------------

    def _apply_schema(self, entry: SchemaVersion) -> None:
        with self._state_lock:
            self._subjects.setdefault(entry.subject, {})[entry.version] = entry
            self._max_id = max(self._max_id, entry.schema_id)
            if entry.schema_id not in self._schemas:
                try:
                    parsed = parse_schema(entry.schema)
                except InvalidSchemaError:
                    log.warning("schema store: schema id %d does not parse", entry.schema_id)
                    return
                self._schemas[entry.schema_id] = parsed
                self._ids_by_canonical.setdefault(parsed.canonical, entry.schema_id)

    def _apply_tombstone(self, subject: str, version: int) -> None:
        with self._state_lock:
            versions = self._subjects.get(subject, {})
            versions.pop(version, None)
            if not versions:
                self._subjects.pop(subject, None)

    def _apply_config(self, subject: str | None, level: CompatibilityLevel | None) -> None:
        with self._state_lock:
            if level is None:
                self._config.pop(subject, None)
            else:
                self._config[subject] = level

    def _write(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Produce ``records`` and wait until the broker has acknowledged every one."""
        if self._producer is None:
            raise StoreError("schema store is not started")
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: KafkaMessage) -> None:
            if err is not None:
                errors.append(str(err))

        try:
            for key, value in records:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
        except (KafkaException, BufferError) as exc:
            raise StoreError(f"Error in the backend data store: {exc}") from None
        pending = self._producer.flush(self.write_timeout)
        if pending:
            raise StoreError(
                f"Error in the backend data store: {pending} write(s) to {self.topic} "
                f"not acknowledged after {self.write_timeout:.0f}s"
            )
        if errors:
            raise StoreError(f"Error in the backend data store: {errors[0]}")

    # --- reads ---------------------------------------------------------------------------

    def _live(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        """Versions of ``subject``, oldest first; soft-deleted ones only if ``deleted``."""
        with self._state_lock:
            entries = sorted(self._subjects.get(subject, {}).values(), key=lambda e: e.version)
        return [e for e in entries if deleted or not e.deleted]

    def subjects(self, *, deleted: bool = False) -> list[str]:
        with self._state_lock:
            names = list(self._subjects)
        return sorted(name for name in names if self._live(name, deleted=deleted))

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        entries = self._live(subject, deleted=deleted)
        if not entries:
            raise SubjectNotFoundError(subject)
        return [e.version for e in entries]

    def get_version(
        self, subject: str, version: int | None, *, deleted: bool = False
    ) -> SchemaVersion:
        """One version; ``None`` is the latest."""
        entries = self._live(subject, deleted=deleted)
        if not entries:
            raise SubjectNotFoundError(subject)
        if version is None:
            return entries[-1]
        for entry in entries:
            if entry.version == version:
                return entry
        raise VersionNotFoundError(version)

    def schema_by_id(self, schema_id: int) -> str:
        with self._state_lock:
            parsed = self._schemas.get(schema_id)
        if parsed is None:
            raise SchemaNotFoundError("Schema not found")
        return parsed.text

    def versions_by_id(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        """Every (subject, version) that uses ``schema_id``."""
        self.schema_by_id(schema_id)
        with self._state_lock:
            entries = [e for versions in self._subjects.values() for e in versions.values()]
        return sorted(
            (e for e in entries if e.schema_id == schema_id and (deleted or not e.deleted)),
            key=lambda e: (e.subject, e.version),
        )

    def lookup(
        self,
        subject: str,
        schema_text: object,
        schema_type: object = AVRO,
        *,
        deleted: bool = False,
    ) -> SchemaVersion:
        """The version of ``subject`` whose schema is the same as ``schema_text``."""
        entries = self._live(subject, deleted=deleted)
        if not entries:
            raise SubjectNotFoundError(subject)
        found = self._find(entries, parse_schema(schema_text, schema_type))
        if found is None:
            raise SchemaNotFoundError("Schema not found")
        return found

    def _find(self, entries: list[SchemaVersion], parsed: ParsedSchema) -> SchemaVersion | None:
        with self._state_lock:
            schema_id = self._ids_by_canonical.get(parsed.canonical)
        if schema_id is None:
            return None
        return next((e for e in reversed(entries) if e.schema_id == schema_id), None)

    def compatibility(
        self, subject: str | None = None, *, fallback: bool = True
    ) -> CompatibilityLevel:
        """The level of ``subject`` (or the global level for None). Without ``fallback``, a
        subject with no level of its own raises SubjectConfigNotFoundError."""
        with self._state_lock:
            if subject is not None and subject in self._config:
                return self._config[subject]
            if subject is not None and not fallback:
                raise SubjectConfigNotFoundError(subject)
            return self._config.get(None, DEFAULT_LEVEL)

    def test_compatibility(
        self,
        subject: str,
        schema_text: object,
        version: int | str | None = "all",
        schema_type: object = AVRO,
    ) -> list[str]:
        """Reasons ``schema_text`` would be refused under ``subject``'s level against one
        version (a number, None = latest) or, with ``"all"``, the versions the level checks.
        An empty list means compatible."""
        parsed = parse_schema(schema_text, schema_type)
        level = self.compatibility(subject)
        if version == "all":
            entries = self._live(subject)
        else:
            entries = [self.get_version(subject, version if isinstance(version, int) else None)]
        return self._problems(parsed, entries, level)

    def _problems(
        self, parsed: ParsedSchema, entries: list[SchemaVersion], level: CompatibilityLevel
    ) -> list[str]:
        with self._state_lock:
            existing = [
                (e.version, self._schemas[e.schema_id].avro)
                for e in entries
                if e.schema_id in self._schemas
            ]
        return compatibility_problems(parsed.avro, existing, level)

    # --- writes --------------------------------------------------------------------------

    def register(
        self, subject: str, schema_text: object, schema_type: object = AVRO
    ) -> SchemaVersion:
        """Register a schema under ``subject``; an identical live version is returned as is.
        Raises InvalidSchemaError (42201) or IncompatibleSchemaError (409)."""
        parsed = parse_schema(schema_text, schema_type)
        with self._write_lock:
            live = self._live(subject)
            existing = self._find(live, parsed)
            if existing is not None:
                return existing
            level = self.compatibility(subject)
            problems = self._problems(parsed, live, level)
            if problems:
                raise IncompatibleSchemaError(
                    f"Schema being registered is incompatible with an earlier schema for "
                    f'subject "{subject}", details: {"; ".join(problems)}'
                )
            with self._state_lock:
                every = self._subjects.get(subject, {})
                version = max(every, default=0) + 1
                schema_id = self._ids_by_canonical.get(parsed.canonical, self._max_id + 1)
                text = self._schemas[schema_id].text if schema_id in self._schemas else parsed.text
            entry = SchemaVersion(subject, version, schema_id, text)
            self._write([(_schema_key(subject, version), _schema_value(entry))])
            self._apply_schema(entry)
            return entry

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft delete (versions marked deleted) or, after that, permanent delete
        (tombstones). Returns the versions deleted."""
        with self._write_lock:
            every = self._live(subject, deleted=True)
            if not every:
                raise SubjectNotFoundError(subject)
            live = [e for e in every if not e.deleted]
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(subject)
                self._write([(_schema_key(subject, e.version), None) for e in every])
                for entry in every:
                    self._apply_tombstone(subject, entry.version)
                return [e.version for e in every]
            if not live:
                raise SubjectSoftDeletedError(subject)
            marked = [replace(e, deleted=True) for e in live]
            self._write([(_schema_key(subject, e.version), _schema_value(e)) for e in marked])
            for entry in marked:
                self._apply_schema(entry)
            return [e.version for e in marked]

    def set_compatibility(self, level: object, subject: str | None = None) -> CompatibilityLevel:
        """Set the global level (``subject`` None) or a subject's. Raises 42203 if invalid."""
        parsed = CompatibilityLevel.parse(level)
        with self._write_lock:
            self._write([(_config_key(subject), _dump({"compatibilityLevel": parsed.value}))])
            self._apply_config(subject, parsed)
        return parsed

    def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove a subject's (or the global) level; returns the level it had."""
        with self._write_lock:
            old = self.compatibility(subject, fallback=subject is None)
            self._write([(_config_key(subject), None)])
            self._apply_config(subject, None)
        return old
