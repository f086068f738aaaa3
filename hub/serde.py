"""Avro values in the Confluent wire format: magic byte 0, a 4-byte big-endian schema id,
then the Avro binary body. Schemas come from ``schemas/`` and are registered under the
TopicNameStrategy subject (``<topic>-value``) of any Confluent-compatible registry.
"""

from __future__ import annotations

import io
import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from hub.errors import RetriableError, SchemaError
from hub.topics import subject_for

MAGIC = 0
_HEADER = struct.Struct(">bI")


def load_schema_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema {path.name}: {exc.__class__.__name__}") from None
    return text


@lru_cache(maxsize=256)
def parse(schema_text: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text))


class AvroCodec:
    """Encodes and decodes one topic's values. The writer schema of an incoming message is
    fetched by its id (cached); values are resolved to this codec's reader schema."""

    def __init__(self, registry: SchemaRegistryClient, topic: str, schema_text: str) -> None:
        self.registry = registry
        self.topic = topic
        self.schema_text = schema_text
        self.schema = parse(schema_text)
        self._writers: dict[int, Any] = {}
        self._schema_id: int | None = None

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            try:
                self._schema_id = self.registry.register_schema(
                    subject_for(self.topic), Schema(self.schema_text, "AVRO")
                )
            except SchemaRegistryError as exc:
                if exc.http_status_code in (409, 422):
                    raise SchemaError(
                        f"schema for {self.topic} refused by the registry: {exc.error_message}"
                    ) from None
                raise RetriableError(
                    f"schema registry error {exc.http_status_code} for {self.topic}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - transport errors of any client
                raise RetriableError(
                    f"schema registry unreachable: {exc.__class__.__name__}"
                ) from None
        return self._schema_id

    def encode(self, value: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, self.schema_id))
        try:
            fastavro.schemaless_writer(buf, self.schema, value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # fastavro's messages can quote the value; keep only the class name.
            raise SchemaError(
                f"value does not match the {self.topic} schema ({exc.__class__.__name__})"
            ) from None
        return buf.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None or len(data) < 5:
            raise SchemaError("value is not in the Confluent wire format (too short)")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SchemaError(f"value is not in the Confluent wire format (magic byte {magic})")
        writer = self._writer(schema_id)
        try:
            result = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, self.schema)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is bad data
            raise SchemaError(
                f"value cannot be decoded with schema id {schema_id} ({exc.__class__.__name__})"
            ) from None
        if not isinstance(result, dict):
            raise SchemaError(f"value for {self.topic} is not a record")
        return result

    def _writer(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is None:
            if schema_id == self._schema_id:
                writer = self.schema
            else:
                try:
                    schema = self.registry.get_schema(schema_id)
                except SchemaRegistryError as exc:
                    if exc.http_status_code == 404:
                        raise SchemaError(f"unknown schema id {schema_id}") from None
                    raise RetriableError(f"schema registry error {exc.http_status_code}") from None
                except Exception as exc:  # noqa: BLE001 - transport errors of any client
                    raise RetriableError(
                        f"schema registry unreachable: {exc.__class__.__name__}"
                    ) from None
                writer = parse(schema.schema_str)
            self._writers[schema_id] = writer
        return writer


#: Seconds a registry request may take (the client's default is no limit: a registry that
#: accepts the connection and never answers would hang the caller for good).
REGISTRY_TIMEOUT = 10


def registry_client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT})


def schema_path(schemas_dir: Path, name: str) -> Path:
    """``sales/Lead`` -> ``schemas/sales/Lead.avsc``."""
    return schemas_dir / f"{name}.avsc"
