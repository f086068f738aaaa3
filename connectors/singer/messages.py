"""Singer messages, one stdout line each, turned into what the runner publishes.

- ``SCHEMA``: the stream's JSON Schema mapped to Avro (``connectors.singer.schema``); a
  schema unlike the one in force gives a new ``Stream`` object, which the runner registers
  as a new version of the topic's subject (or fails with the registry's reason).
- ``RECORD``: a ``SourceRecord``. Its ``record_id`` is the stream, the primary key and the
  replication-key value (``users:42@2024-01-02T10:00:00Z``), or the record's digest when
  the stream has no replication key (``orgs:o1#<sha256/128>``) or no key at all, so reading
  the same change again gives the same event id. Its Kafka key is the primary key. A record
  that does not fit its schema carries the reasons (property path, expected type) and goes
  to quarantine.
- ``STATE``: a checkpoint whose cursor is ``{"state": <value>}``: the runner commits it once
  every record before it was acknowledged.
- ``ACTIVATE_VERSION`` and unknown types: ignored (debug log). ``BATCH``: refused (its
  records live in files the hub does not read; losing them silently is not an option).

A line that is not a Singer message is a ``NotSinger`` whose detail describes its shape
only, never its content.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.singer.schema import AvroMapping
from hub.quarantine import json_payload
from hub.sdk.streams import SourceRecord, Stream

log = logging.getLogger(__name__)

STATE_KEY = "state"  # the cursor: {"state": <the tap's STATE value>}


class NotSinger(Exception):
    """A stdout line that is not a Singer message (``detail`` says how, not what)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BatchMessages(Exception):
    """The tap sent BATCH messages."""


@dataclass(frozen=True)
class StreamOut:
    """A stream as the runner publishes it, with what the reader needs to convert records."""

    stream: Stream
    mapping: AvroMapping
    key_properties: tuple[str, ...]  # Singer property names
    replication_key: str | None  # Singer property name


# (stream name, JSON Schema, key properties, replication key) -> StreamOut
Resolve = Callable[[str, Any, tuple[str, ...], str | None], StreamOut]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def identity(
    stream: str, record: Mapping[str, Any], keys: tuple[str, ...], replication_key: str | None
) -> tuple[str, str | None]:
    """(record_id, Kafka key) of a record (see the module doc)."""
    values = [record.get(k) for k in keys]
    key: str | None = None
    if keys and all(v is not None for v in values):
        key = _text(values[0]) if len(values) == 1 else json.dumps(values, separators=(",", ":"))
    bookmark = record.get(replication_key) if replication_key else None
    if key is not None and bookmark is not None:
        return f"{stream}:{key}@{_text(bookmark)}", key
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    if key is not None:
        return f"{stream}:{key}#{digest}", key
    return f"{stream}#{digest}", None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass
class MessageReader:
    """Reads one run of a tap. ``known``: the streams from the catalog, by every name."""

    resolve: Resolve
    known: Mapping[str, StreamOut]
    current: dict[str, StreamOut] = field(default_factory=dict)
    undeclared_warned: set[str] = field(default_factory=set)
    last_event_time: datetime | None = None
    last_stream: str | None = None
    records: int = 0
    states: int = 0

    def read(self, line: bytes) -> SourceRecord | None:
        """The record or checkpoint of one line (None: nothing to publish)."""
        if not line.strip():
            return None
        try:
            message = json.loads(line)
        except ValueError:  # also invalid UTF-8
            raise NotSinger("not JSON") from None
        if not isinstance(message, dict):
            raise NotSinger("JSON, but not an object")
        kind = message.get("type")
        if not isinstance(kind, str):
            raise NotSinger('a JSON object without a "type"')
        if kind == "RECORD":
            return self._record(message)
        if kind == "STATE":
            return self._state(message)
        if kind == "SCHEMA":
            self._schema(message)
            return None
        if kind == "BATCH":
            raise BatchMessages
        log.debug("singer message %s ignored", kind[:40])
        return None

    def _stream_name(self, message: Mapping[str, Any], kind: str) -> str:
        name = message.get("stream")
        if not isinstance(name, str) or not name:
            raise NotSinger(f"a {kind} message without a stream name")
        return name

    def _schema(self, message: Mapping[str, Any]) -> None:
        name = self._stream_name(message, "SCHEMA")
        schema = message.get("schema")
        if not isinstance(schema, Mapping):
            raise NotSinger(f"a SCHEMA message of stream {name} without a schema object")
        catalog = self.known.get(name)
        raw_keys = message.get("key_properties")
        if isinstance(raw_keys, list):
            keys = tuple(str(k) for k in raw_keys)
        else:
            keys = catalog.key_properties if catalog else ()
        bookmarks = message.get("bookmark_properties")
        if isinstance(bookmarks, list) and bookmarks:
            replication_key: str | None = str(bookmarks[0])
        else:
            replication_key = catalog.replication_key if catalog else None
        self.current[name] = self.resolve(name, schema, keys, replication_key)

    def _record(self, message: Mapping[str, Any]) -> SourceRecord:
        name = self._stream_name(message, "RECORD")
        record = message.get("record")
        if not isinstance(record, dict):
            raise NotSinger(f"a RECORD message of stream {name} without a record object")
        out = self.current.get(name) or self.known.get(name)
        if out is None:
            raise NotSinger(f"a RECORD of stream {name} before any SCHEMA of it")
        self.records += 1
        record_id, key = identity(name, record, out.key_properties, out.replication_key)
        event_time = (
            _when(record.get(out.replication_key)) if out.replication_key else None
        ) or _when(message.get("time_extracted"))
        self.last_event_time = event_time or self.last_event_time
        self.last_stream = name
        value, reasons = out.mapping.convert(record)
        # The runner takes a Stream object as a record's stream (a schema that changed under
        # the same name); SourceRecord.stream's annotation still says only a name.
        stream: Any = out.stream
        if reasons:
            return SourceRecord(
                record_id=record_id,
                key=key,
                stream=stream,
                reasons=reasons,
                raw=json_payload(record),
                event_time=event_time,
                error_class="SchemaError",
            )
        if name not in self.undeclared_warned and out.mapping.undeclared(record):
            self.undeclared_warned.add(name)
            log.warning(
                "stream %s: records carry %d properties its SCHEMA does not declare; "
                "they are not published",
                name,
                out.mapping.undeclared(record),
            )
        return SourceRecord(
            record_id=record_id, value=value, key=key, stream=stream, event_time=event_time
        )

    def _state(self, message: Mapping[str, Any]) -> SourceRecord:
        if "value" not in message:
            raise NotSinger("a STATE message without a value")
        self.states += 1
        return SourceRecord(
            record_id="",
            cursor={STATE_KEY: message["value"]},
            checkpoint=True,
            event_time=self.last_event_time,
            stream=self.last_stream,
        )


__all__ = [
    "STATE_KEY",
    "BatchMessages",
    "MessageReader",
    "NotSinger",
    "StreamOut",
    "identity",
]
