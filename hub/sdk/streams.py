"""What a connector declares and yields: streams, source partitions, records, cursors.

A connector is one class with a frozen pydantic ``Config``. It declares its **streams**
(name, topic, Avro schema, primary key, replication key) and reads each of its **source
partitions** (a file, an API stream) from a **cursor** with a ``fetch`` generator. The
framework (``hub.connect.ConnectorRunner``), not the connector, owns the cursors: it
stores a record's cursor only after the broker acknowledged that record and every one
before it, so a restart resumes after the last acknowledged record, never before nor
after it.

Cursors are the connector's own JSON objects (``{"version": <sha256>, "position": 42}``
for a file, ``{"after": "c_81", "since": "2026-01-02T03:04:05Z"}`` for an API). A record
whose ``cursor`` is ``None`` is not a resume point (e.g. the middle of an API page): the
framework commits at the next record that has one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from hub.quarantine import QuarantineReason

Cursor = Mapping[str, Any]

# Keys the framework keeps next to a connector's cursor in the stored offset.
FRAMEWORK_OFFSET_KEYS = frozenset({"done", "log", "rows_read", "published", "quarantined"})
COUNTER_KEYS = ("rows_read", "published", "quarantined")


@dataclass(frozen=True, slots=True)
class Stream:
    """One kind of record a connector emits, and the topic it goes to."""

    name: str  # e.g. "contacts"
    topic: str  # e.g. "crm.raw.marketing.contacts.v1"
    event_type: str  # CloudEvents type, e.g. "crm.marketing.contact.changed.v1"
    # Avro schema: a name under schemas/ ("sales/LeadCaptured") or the schema itself; None
    # for a stream that can only be read standalone (no Kafka), e.g. raw sheet rows.
    schema: str | Mapping[str, Any] | None
    primary_key: tuple[str, ...] = ()
    replication_key: str | None = None  # the field an incremental read resumes from
    department: str | None = None  # defaults to the connector's


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read from a source.

    ``record_id`` names the source change (``leads.csv@ab12:42``, ``contacts:1051:2026-…``):
    the event id derives from it, so reading the same change again yields the same event
    and the projections drop the copy. ``reasons`` non-empty means the record could not be
    read: it goes to quarantine with ``raw`` (what could be read, for re-drive).
    """

    record_id: str
    value: dict[str, Any] | None = None
    key: str | None = None  # the entity's stable id (Kafka key); defaults to record_id
    stream: str | Stream | None = None  # a name or the Stream; None: the first one
    cursor: Cursor | None = None  # where to resume after this record; None: not a resume point
    position: int | None = None  # row or sequence number, for quarantine context
    reasons: tuple[QuarantineReason, ...] = ()
    raw: bytes | None = None
    source_file: str | None = None
    event_time: datetime | None = None  # when the change happened at the source (cursor lag)
    error_class: str | None = None  # with reasons: what kind of error stopped it
    checkpoint: bool = False  # no record: only a cursor to resume from (e.g. a Singer STATE)

    @classmethod
    def at(cls, cursor: Cursor) -> SourceRecord:
        """A resume point that is not a record (published as nothing, counted as nothing)."""
        return cls(record_id="", cursor=cursor, checkpoint=True)


@dataclass(slots=True)
class SourcePartition:
    """A unit the connector reads in order (a file, an API stream) and where to start."""

    partition: dict[str, Any]  # Connect's source partition, e.g. {"file": "leads.csv"}
    cursor: dict[str, Any] | None = None  # None: from the beginning
    counters: dict[str, int] = field(default_factory=dict)
    # "topic:partition" -> next offset, as acknowledged when the cursor was committed:
    # records after these positions may have been published after the cursor was stored.
    log: dict[str, int] = field(default_factory=dict)


class OffsetReader(Protocol):
    """The stored offsets (``hub.connect_offsets.OffsetStore`` or a Singer state file)."""

    def get(self, connector: str, partition: dict[str, Any]) -> dict[str, Any] | None: ...


class SourceConnector(Protocol):
    """What the runner drives. ``SourceConnectorBase`` gives the usual defaults."""

    name: str
    department: str

    def streams(self) -> Sequence[Stream]: ...

    def check(self) -> None: ...

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]: ...

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]: ...


def split_offset(stored: Mapping[str, Any] | None) -> SourcePartition | None:
    """A stored offset as (cursor, counters, log) in a partition with no key yet."""
    if stored is None:
        return None
    cursor = {k: v for k, v in stored.items() if k not in FRAMEWORK_OFFSET_KEYS} or None
    counters = {k: int(stored.get(k, 0)) for k in COUNTER_KEYS}
    log = {str(k): int(v) for k, v in dict(stored.get("log") or {}).items()}
    return SourcePartition({}, cursor, counters, log)


def resume_partition(
    offsets: OffsetReader, connector: str, partition: dict[str, Any]
) -> SourcePartition:
    """The partition with its stored cursor, counters and log (none stored: from the start)."""
    stored = split_offset(offsets.get(connector, partition))
    if stored is None:
        return SourcePartition(partition)
    stored.partition = partition
    return stored


class SourceConnectorBase:
    """Defaults for a connector: one source partition per stream, ``{"stream": name}``,
    resumed from its stored cursor; ``fetch`` hands each to ``fetch_stream``. A connector
    overrides ``streams`` and ``fetch_stream`` (and ``check`` to test its credentials)."""

    name: str
    department: str
    version = "0.1.0"

    def streams(self) -> Sequence[Stream]:
        raise NotImplementedError

    def stream(self, name: str) -> Stream:
        for stream in self.streams():
            if stream.name == name:
                return stream
        known = ", ".join(s.name for s in self.streams())
        raise KeyError(f"connector {self.name} has no stream {name!r}; known: {known}")

    def check(self) -> None:
        """Raise a ``HubError`` if the source cannot be read with this config."""

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]:
        return [
            resume_partition(offsets, self.name, {"stream": stream.name})
            for stream in self.streams()
        ]

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        stream = self.stream(str(part.partition["stream"]))
        yield from self.fetch_stream(stream, part.cursor)

    def fetch_stream(self, stream: Stream, cursor: Cursor | None) -> Iterator[SourceRecord]:
        raise NotImplementedError


__all__ = [
    "COUNTER_KEYS",
    "FRAMEWORK_OFFSET_KEYS",
    "Cursor",
    "OffsetReader",
    "SourceConnector",
    "SourceConnectorBase",
    "SourcePartition",
    "SourceRecord",
    "Stream",
    "resume_partition",
    "split_offset",
]
