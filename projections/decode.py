"""Kafka messages of the projection's topics to ``ConsumedEvent`` / ``UndecodableEvent``.

The worker's reader thread runs this for every message, so it is shaped for throughput
(#3, measured per lead event on this machine: headers 5.2 µs instead of 7.0 µs with
``EventMeta.from_headers``, the Avro value 5.1 µs instead of 10.6 µs with fastavro):

- CloudEvents headers: one dict comprehension over the header list; ``ce_time`` values are
  parsed once per distinct value (a connector batch shares one). The result equals
  ``EventMeta.from_headers`` (a test pins it), which handles the unusual cases.
- Avro values whose writer schema (by registry id) is the reader schema itself need no
  resolution: flat records (the leads) are read by ``FlatRecordReader``, others by
  ``fastavro.schemaless_reader`` with the cached parsed schema. Any other value goes
  through the topic's ``AvroCodec`` (registry lookup, schema resolution, the same errors),
  which also teaches the decoder which ids qualify.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import fastavro
from confluent_kafka import Message

from hub.errors import SchemaError
from hub.events import AVRO_CONTENT_TYPE, EventMeta, parse_time
from hub.serde import AvroCodec, parse
from projections.flat_avro import FlatRecordReader
from projections.store import ConsumedEvent, Item, Tombstone, UndecodableEvent

log = logging.getLogger(__name__)

_REQUIRED = ("ce_id", "ce_source", "ce_type")
_TIME_CACHE_SIZE = 4096

RawHeaders = Sequence[tuple[str, bytes | str | None]] | None


class _UnresolvedReader:
    """Values written with the reader schema itself."""

    __slots__ = ("flat", "schema")

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.flat = FlatRecordReader.compile(schema)

    def read(self, raw: bytes) -> Any:
        if self.flat is not None:
            try:
                return self.flat.read(raw, 5)
            except Exception:  # noqa: BLE001, S110 - bad data: fastavro gives the verdict
                pass
        return fastavro.schemaless_reader(io.BytesIO(raw[5:]), self.schema, None)


class MessageDecoder:
    """Decodes messages of the topics in ``codecs`` (topic -> its reader ``AvroCodec``). On
    the ``compacted`` topics a record with a key and no value is a `Tombstone`; anywhere
    else a missing value is undecodable."""

    def __init__(self, codecs: Mapping[str, AvroCodec], compacted: Iterable[str] = ()) -> None:
        self.codecs = dict(codecs)
        self.compacted = frozenset(compacted)
        # (topic, schema id) -> a reader when the writer schema is the reader schema; None
        # when it is not (those go through the codec).
        self._direct: dict[tuple[str, int], _UnresolvedReader | None] = {}
        self._times: dict[str, datetime] = {}

    def decode_all(self, messages: Iterable[Message]) -> list[Item]:
        return [self.decode(m) for m in messages]

    def decode(self, msg: Message) -> Item:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:  # only on error events
            raise ValueError("message without a position")
        raw_key = msg.key()
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
        if topic in self.compacted and msg.value() is None:
            if key:
                return Tombstone(topic, partition, offset, key)
            message = "a tombstone without a key"
            return _undecodable(topic, partition, offset, key, "decode.tombstone", message)
        try:
            meta = self.event_meta(cast("RawHeaders", msg.headers()))
        except SchemaError as exc:
            return _undecodable(topic, partition, offset, key, "decode.headers", exc.message)
        except UnicodeDecodeError:
            message = "a CloudEvents header is not UTF-8"
            return _undecodable(topic, partition, offset, key, "decode.headers", message)
        except ValueError:
            return _undecodable(
                topic, partition, offset, key, "decode.headers", "bad ce_time header"
            )
        raw = msg.value()
        try:
            value = self.value(topic, raw)
        except SchemaError as exc:
            return _undecodable(
                topic, partition, offset, key, "decode.value", exc.message, event_id=meta.id
            )
        assert raw is not None  # value() refuses None
        return ConsumedEvent(topic, partition, offset, key, meta, value, raw)

    def event_meta(self, headers: RawHeaders) -> EventMeta:
        """``EventMeta.from_headers(headers)``, for the hot path: header values as the
        Kafka client gives them (bytes) and every CloudEvents attribute present. Anything
        else (str values, a missing attribute) goes to ``from_headers`` itself, which
        also raises its errors."""
        try:
            values = {k: v.decode() for k, v in headers or () if v is not None}  # type: ignore[union-attr]
            event_id, source, type_ = values["ce_id"], values["ce_source"], values["ce_type"]
        except (AttributeError, KeyError):
            return EventMeta.from_headers(headers)
        return EventMeta(
            id=event_id,
            source=source,
            type=type_,
            subject=values.get("ce_subject", ""),
            time=self._time(values.get("ce_time")),
            content_type=values.get("content-type", AVRO_CONTENT_TYPE),
            lineage={k: v for k, v in values.items() if k.startswith("hub_")},
        )

    def _time(self, text: str | None) -> datetime:
        if not text:
            return parse_time(text)  # no time: now, as EventMeta.from_headers does
        t = self._times.get(text)
        if t is None:
            t = parse_time(text)
            if len(self._times) >= _TIME_CACHE_SIZE:
                self._times.clear()
            self._times[text] = t
        return t

    def value(self, topic: str, raw: bytes | None) -> dict[str, Any]:
        """The Avro value of a message of ``topic``, as ``AvroCodec.decode`` reads it."""
        if raw is not None and len(raw) >= 5 and raw[0] == 0:
            schema_id = int.from_bytes(raw[1:5], "big")
            reader = self._direct.get((topic, schema_id))
            if reader is not None:
                try:
                    value = reader.read(raw)
                except Exception as exc:  # noqa: BLE001 - any decoder failure is bad data
                    raise SchemaError(
                        f"value cannot be decoded with schema id {schema_id} "
                        f"({exc.__class__.__name__})"
                    ) from None
                if not isinstance(value, dict):
                    raise SchemaError(f"value for {topic} is not a record")
                return value
        codec = self.codecs[topic]
        decoded = codec.decode(raw)
        assert raw is not None  # decode() refuses None
        self._learn(topic, codec, int.from_bytes(raw[1:5], "big"))
        return decoded

    def _learn(self, topic: str, codec: AvroCodec, schema_id: int) -> None:
        """Whether values written with ``schema_id`` can skip schema resolution."""
        if (topic, schema_id) in self._direct:
            return
        try:  # the codec has just fetched it: the registry client has it cached
            writer = parse(codec.registry.get_schema(schema_id).schema_str)
        except Exception as exc:  # noqa: BLE001 - only an optimisation is lost
            log.debug("schema id %d stays on the resolving path (%s)", schema_id, exc)
            writer = None
        self._direct[(topic, schema_id)] = (
            _UnresolvedReader(codec.schema) if writer == codec.schema else None
        )


def _undecodable(
    topic: str,
    partition: int,
    offset: int,
    key: str | None,
    rule_id: str,
    message: str,
    *,
    event_id: str | None = None,
) -> UndecodableEvent:
    log.warning(
        "undecodable message %s[%d]@%d quarantined (%s: %s)",
        topic,
        partition,
        offset,
        rule_id,
        message,
    )
    return UndecodableEvent(topic, partition, offset, key, rule_id, message, event_id)
