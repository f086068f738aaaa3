"""Quarantine records: what any stage emits for a record it cannot handle.

A quarantine record keeps the original payload (for re-drive after a fix) and
machine-readable reasons (rule id, field, message). Reasons never carry the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.events import EventMeta, deterministic_id

QUARANTINE_EVENT_TYPE = "crm.quarantine.record.v1"

STAGE_CONNECTOR = "connector"
STAGE_DECODE = "decode"
STAGE_VALIDATION = "validation"


@dataclass(frozen=True, slots=True)
class QuarantineReason:
    rule_id: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "field": self.field, "message": self.message}


def quarantine_record(
    *,
    stage: str,
    reasons: Iterable[QuarantineReason],
    origin_id: str,
    payload: bytes | None,
    payload_format: str,
    department: str | None = None,
    connector: str | None = None,
    source_file: str | None = None,
    source_row: int | None = None,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    source_event_id: str | None = None,
    entity_id: str | None = None,
    policy_version: str | None = None,
    now: datetime | None = None,
    source_cursor: str | None = None,
    error_class: str | None = None,
) -> dict[str, Any]:
    """A value for schemas/common/QuarantineRecord.avsc. `origin_id` identifies the source
    record (event id, or file fingerprint + row) so the quarantine id is deterministic."""
    reason_list = [r.as_dict() for r in reasons]
    return {
        "quarantine_id": deterministic_id("quarantine", stage, origin_id),
        "stage": stage,
        "department": department,
        "connector": connector,
        "source_file": source_file,
        "source_row": source_row,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "source_event_id": source_event_id,
        "entity_id": entity_id,
        "reasons": reason_list,
        "policy_version": policy_version,
        "payload_format": payload_format,
        "payload": payload,
        "quarantined_at": now or datetime.now(UTC),
        "source_cursor": source_cursor,
        "error_class": error_class,
    }


def quarantine_meta(record: dict[str, Any], parent: EventMeta | None, source: str) -> EventMeta:
    """CloudEvents envelope of a quarantine record; inherits subject and lineage."""
    subject = record.get("entity_id") or record["quarantine_id"]
    lineage = dict(parent.lineage) if parent else {}
    return EventMeta(
        id=record["quarantine_id"],
        source=parent.source if parent else source,
        type=QUARANTINE_EVENT_TYPE,
        subject=str(subject),
        time=parent.time if parent else record["quarantined_at"],
        lineage=lineage,
    )


def json_payload(cells: dict[str, Any] | None) -> bytes | None:
    if cells is None:
        return None
    return json.dumps(cells, ensure_ascii=False, sort_keys=True).encode()
