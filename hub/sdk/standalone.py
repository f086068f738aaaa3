"""Run one connector without Kafka, Singer-style: ``check``, ``discover`` and ``read``.

``read`` writes Singer messages as JSON lines: a ``SCHEMA`` before a stream's first record
(JSON Schema made from the stream's Avro schema), one ``RECORD`` per record, and a
``STATE`` at resume points (every ``state_every`` records and at the end of each source
partition). The state value is the connector's offsets in the shape of Kafka Connect's
offsets API, ``{"offsets": [{"partition": {...}, "offset": {...}}]}``; handing it back
(``--state FILE``) resumes after the last record it covers. Records the connector could
not read are not RECORDs: each is one line on the error stream with its position and
reasons (never its value).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from hub.errors import ConfigError
from hub.sdk.streams import (
    COUNTER_KEYS,
    SourceConnector,
    SourcePartition,
    SourceRecord,
    Stream,
)


def _key(partition: Mapping[str, Any]) -> str:
    return json.dumps(partition, sort_keys=True, separators=(",", ":"))


class StateOffsets:
    """Offsets from a Singer state value (``OffsetReader`` for one connector)."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self._offsets: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        value = state.get("value", state) if state else {}
        if not isinstance(value, Mapping):
            raise ConfigError("state: expected a JSON object (a Singer STATE value)")
        entries = value.get("offsets", [])
        if not isinstance(entries, list):
            raise ConfigError('state: "offsets" must be a list of {partition, offset}')
        for entry in entries:
            if not (isinstance(entry, Mapping) and isinstance(entry.get("partition"), Mapping)):
                raise ConfigError("state: every offset needs a partition object")
            offset = entry.get("offset")
            if offset is None:
                continue
            if not isinstance(offset, Mapping):
                raise ConfigError("state: every offset must be an object or null")
            self.put(dict(entry["partition"]), dict(offset))

    def get(self, connector: str, partition: dict[str, Any]) -> dict[str, Any] | None:
        found = self._offsets.get(_key(partition))
        return dict(found[1]) if found is not None else None

    def put(self, partition: dict[str, Any], offset: dict[str, Any]) -> None:
        self._offsets[_key(partition)] = (partition, offset)

    def value(self) -> dict[str, Any]:
        return {"offsets": [{"partition": p, "offset": o} for p, o in self._offsets.values()]}


# -- schemas ------------------------------------------------------------------------------------


def _json_type(avro: Any, named: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema for one Avro type (records, unions with null, arrays, maps, enums,
    fixed, logical types)."""
    if isinstance(avro, list):
        types = [t for t in avro if t != "null"]
        if len(types) == 1:
            inner = _json_type(types[0], named)
        else:
            inner = {"anyOf": [_json_type(t, named) for t in types]}
        if "null" in avro:
            if "type" in inner and isinstance(inner["type"], str):
                inner = {**inner, "type": [inner["type"], "null"]}
            else:
                inner = {"anyOf": [inner, {"type": "null"}]}
        return inner
    if isinstance(avro, str):
        if avro in named:
            return _json_type(named[avro], named)
        return {
            "string": {"type": "string"},
            "boolean": {"type": "boolean"},
            "int": {"type": "integer"},
            "long": {"type": "integer"},
            "float": {"type": "number"},
            "double": {"type": "number"},
            "bytes": {"type": "string", "contentEncoding": "base64"},
            "null": {"type": "null"},
        }.get(avro, {})
    if not isinstance(avro, Mapping):
        return {}
    logical = avro.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return {"type": "string", "format": "date-time"}
    if logical == "date":
        return {"type": "string", "format": "date"}
    if logical == "decimal":
        return {"type": "string", "format": "decimal"}
    kind = avro.get("type")
    out: dict[str, Any]
    if kind == "record":
        named[str(avro.get("name"))] = avro
        out = {
            "type": "object",
            "properties": {
                str(f["name"]): _with_doc(_json_type(f["type"], named), f)
                for f in avro.get("fields", [])
            },
            "required": [
                str(f["name"])
                for f in avro.get("fields", [])
                if not (isinstance(f["type"], list) and "null" in f["type"])
            ],
            "additionalProperties": False,
        }
    elif kind == "enum":
        named[str(avro.get("name"))] = avro
        out = {"type": "string", "enum": list(avro.get("symbols", []))}
    elif kind == "array":
        out = {"type": "array", "items": _json_type(avro.get("items"), named)}
    elif kind == "map":
        out = {"type": "object", "additionalProperties": _json_type(avro.get("values"), named)}
    elif kind == "fixed":
        named[str(avro.get("name"))] = avro
        out = {"type": "string", "contentEncoding": "base64"}
    else:
        out = _json_type(kind, named)
    return out


def _with_doc(schema: dict[str, Any], avro_field: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if avro_field.get("doc"):
        extra["description"] = avro_field["doc"]
    if avro_field.get("pii"):
        extra["x-pii"] = avro_field["pii"]  # the DLP class the schema declares
    return {**schema, **extra}


def json_schema(stream: Stream, avro: Mapping[str, Any] | None, sample: SourceRecord | None) -> Any:
    """The JSON Schema of a stream: from its Avro schema, or (no schema: raw rows) an
    object of nullable strings named after the first record's keys."""
    if avro is not None:
        return _json_type(dict(avro), {})
    keys = list(sample.value or {}) if sample is not None else []
    return {"type": "object", "properties": {k: {"type": ["string", "null"]} for k in keys}}


# -- messages -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _line(message: Mapping[str, Any]) -> str:
    return json.dumps(message, default=_jsonable, ensure_ascii=False, separators=(",", ":"))


def catalog(connector: SourceConnector, schemas: Mapping[str, Mapping[str, Any] | None]) -> Any:
    """The Singer catalog of the connector's streams (``discover``)."""
    streams = []
    for stream in connector.streams():
        avro = schemas.get(stream.name)
        streams.append(
            {
                "tap_stream_id": stream.name,
                "stream": stream.name,
                "schema": json_schema(stream, avro, None),
                "key_properties": list(stream.primary_key),
                "replication_key": stream.replication_key,
                "replication_method": "INCREMENTAL" if stream.replication_key else "FULL_TABLE",
                "metadata": [
                    {
                        "breadcrumb": [],
                        "metadata": {
                            "inclusion": "available",
                            "selected": True,
                            "table-key-properties": list(stream.primary_key),
                            "valid-replication-keys": (
                                [stream.replication_key] if stream.replication_key else []
                            ),
                            "topic": stream.topic,
                            "event-type": stream.event_type,
                        },
                    }
                ],
            }
        )
    return {"streams": streams}


class SingerReader:
    """Reads a connector to the end of every partition, writing Singer messages."""

    def __init__(
        self,
        connector: SourceConnector,
        schemas: Mapping[str, Mapping[str, Any] | None],
        out: TextIO,
        err: TextIO,
        *,
        state: StateOffsets | None = None,
        state_every: int = 1000,
    ) -> None:
        self.connector = connector
        self.schemas = schemas
        self.out = out
        self.err = err
        self.state = state or StateOffsets()
        self.state_every = state_every
        self._schema_sent: set[str] = set()
        self.records = 0
        self.quarantined = 0

    def run(self) -> None:
        for part in self.connector.partitions(self.state):
            self._partition(part)

    def _stream_of(self, rec: SourceRecord) -> Stream:
        if isinstance(rec.stream, Stream):
            return rec.stream
        streams = list(self.connector.streams())
        for stream in streams:
            if stream.name == (rec.stream or streams[0].name):
                return stream
        raise ConfigError(f"connector {self.connector.name} emitted a record of unknown stream")

    def _partition(self, part: SourcePartition) -> None:
        counters = {k: int(part.counters.get(k, 0)) for k in COUNTER_KEYS}
        cursor = part.cursor
        since_state = 0
        for rec in self.connector.fetch(part):
            if rec.checkpoint:
                if rec.cursor is not None:
                    cursor = dict(rec.cursor)
                continue
            counters["rows_read"] += 1
            if rec.reasons or rec.value is None:
                counters["quarantined"] += 1
                self.quarantined += 1
                self._quarantine(rec)
            else:
                counters["published"] += 1
                self._record(rec)
            since_state += 1
            if rec.cursor is not None:
                cursor = dict(rec.cursor)
                if since_state >= self.state_every:
                    self._state(part, cursor, counters, done=False)
                    since_state = 0
        self._state(part, cursor, counters, done=True)

    def _record(self, rec: SourceRecord) -> None:
        stream = self._stream_of(rec)
        if stream.name not in self._schema_sent:
            self._schema_sent.add(stream.name)
            avro = self.schemas.get(stream.name)
            message: dict[str, Any] = {
                "type": "SCHEMA",
                "stream": stream.name,
                "schema": json_schema(stream, avro, rec),
                "key_properties": list(stream.primary_key),
            }
            if stream.replication_key:
                message["bookmark_properties"] = [stream.replication_key]
            self.out.write(_line(message) + "\n")
        self.records += 1
        self.out.write(
            _line(
                {
                    "type": "RECORD",
                    "stream": stream.name,
                    "record": rec.value,
                    "time_extracted": _jsonable(datetime.now(UTC)),
                }
            )
            + "\n"
        )

    def _quarantine(self, rec: SourceRecord) -> None:
        where = rec.source_file or rec.record_id
        if rec.position is not None and rec.source_file:
            where = f"{rec.source_file} row {rec.position}"
        reasons = "; ".join(f"{r.rule_id}: {r.message}" for r in rec.reasons) or "no value"
        self.err.write(f"quarantined {where}: {reasons}\n")

    def _state(
        self,
        part: SourcePartition,
        cursor: Mapping[str, Any] | None,
        counters: Mapping[str, int],
        *,
        done: bool,
    ) -> None:
        offset = {**(cursor or {}), "done": done, **counters}
        self.state.put(dict(part.partition), offset)
        self.out.write(_line({"type": "STATE", "value": self.state.value()}) + "\n")
        self.out.flush()


def load_state(lines: Iterable[str]) -> StateOffsets:
    """The last STATE in a file of Singer messages, or a file holding one state value."""
    text = "".join(lines).strip()
    if not text:
        return StateOffsets()
    try:
        return StateOffsets(json.loads(text))
    except ValueError:
        pass
    last: Any = None
    for raw in text.splitlines():
        try:
            message = json.loads(raw)
        except ValueError:
            raise ConfigError("state file: neither a JSON state nor Singer messages") from None
        if isinstance(message, Mapping) and message.get("type") == "STATE":
            last = message
    return StateOffsets(last)


__all__ = ["SingerReader", "StateOffsets", "catalog", "json_schema", "load_state"]
