"""CloudEvents (Kafka protocol binding, binary content mode) headers plus the hub's lineage
headers. The value is the Avro body; the headers carry the envelope.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

SPECVERSION = "1.0"
AVRO_CONTENT_TYPE = "application/avro"

# Hub lineage header names (not CloudEvents attributes; prefixed so they never collide).
H_CONNECTOR = "hub_connector"
H_DEPARTMENT = "hub_department"
H_SOURCE_RECORD = "hub_source_record_id"
H_POLICY_VERSION = "hub_policy_version"
H_TRACE_ID = "hub_trace_id"

Headers = list[tuple[str, bytes]]

_NAMESPACE = uuid.UUID("4b6f7e1c-2d4a-5c8e-9f10-6a7b8c9d0e1f")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def processor_source(flow: str) -> str:
    """The CloudEvents source of what the processor's chain of `flow` publishes (its
    validated events and their vault entries): how a consumer tells a department's entries
    apart, e.g. the projection an HR employee's vault entries (an erasure shreds them)."""
    return f"urn:crm-hub:processor:{flow}"


def deterministic_id(*parts: str) -> str:
    """An event id derived from its source position, so a re-published record keeps its id
    and idempotent consumers drop the copy. The RFC 4122 name-based (SHA-1, version 5)
    UUID of the parts, computed without building a `uuid.UUID` (it runs once per record on
    the connector's hot path; a unit test pins it to `uuid.uuid5`)."""
    name = _NAMESPACE_BYTES + "\x1f".join(parts).encode()
    d = bytearray(hashlib.sha1(name, usedforsecurity=False).digest()[:16])  # RFC 4122 v5
    d[6] = (d[6] & 0x0F) | 0x50
    d[8] = (d[8] & 0x3F) | 0x80
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class EventMeta:
    """The CloudEvents context attributes of one event, plus hub lineage."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    content_type: str = AVRO_CONTENT_TYPE
    lineage: dict[str, str] = field(default_factory=dict)

    def to_headers(self) -> Headers:
        headers: Headers = [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", format_time(self.time).encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", self.content_type.encode()),
        ]
        headers.extend((k, v.encode()) for k, v in self.lineage.items())
        return headers

    def derive(self, *, type: str, id: str | None = None, **lineage: str) -> EventMeta:
        """The envelope of an event produced from this one: same subject and trace."""
        merged = dict(self.lineage)
        merged.update(lineage)
        return EventMeta(
            id=id or deterministic_id(self.id, type),
            source=self.source,
            type=type,
            subject=self.subject,
            time=self.time,
            content_type=self.content_type,
            lineage=merged,
        )

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | str | None]] | None) -> EventMeta:
        values: dict[str, str] = {}
        for key, raw in headers or ():
            if raw is None:
                continue
            values[key] = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
        missing = [k for k in ("ce_id", "ce_source", "ce_type") if k not in values]
        if missing:
            from hub.errors import SchemaError

            raise SchemaError(f"event has no CloudEvents header {', '.join(missing)}")
        lineage = {k: v for k, v in values.items() if k.startswith("hub_")}
        return cls(
            id=values["ce_id"],
            source=values["ce_source"],
            type=values["ce_type"],
            subject=values.get("ce_subject", ""),
            time=parse_time(values.get("ce_time")),
            content_type=values.get("content-type", AVRO_CONTENT_TYPE),
            lineage=lineage,
        )


def format_time(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def header_value(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, raw in headers or ():
        if key == name and raw is not None:
            return raw.decode()
    return None
