"""Re-drive quarantined records after a fix, through the same path they took.

- A record a **processor or projection stage** stopped (it has ``source_topic``,
  ``source_partition``, ``source_offset``): the original event is read back from that
  position and published again to the same topic, with a new event id derived from the
  original one and the attempt (``hub_redrive_of`` and ``hub_redrive_attempt`` headers say
  which quarantine record it re-drives; ``hub_trace_id`` keeps the original trace), so the
  stages judge it again under today's policies and code. A record stopped again becomes a
  new quarantine record (its id includes the attempt), never a silent duplicate.
- A row a **file connector** could not read (``source_file`` and ``source_row``): the
  connector is rewound through the Kafka Connect REST API (stop, alter its offset for the
  file to the row before, resume), so it reads the row — and what follows it — again with
  today's mapping; rows read before produce the same event ids and are dropped as copies.
- Anything else (a webhook body, an API record) is refused with what to do instead.

Every re-drive is an event on ``crm.quarantine.redrives.v1`` (``QuarantineRedriven``):
the projection records it in the audit trail and marks the quarantine row re-driven.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from hub import topics
from hub.broker import ensure_topics
from hub.errors import ConfigError, HubError, RetriableError
from hub.events import H_TRACE_ID, EventMeta, deterministic_id, header_value
from hub.quarantine import STAGE_CONNECTOR
from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path
from hub.settings import Settings

H_REDRIVE_OF = "hub_redrive_of"
H_REDRIVE_ATTEMPT = "hub_redrive_attempt"
REDRIVEN_TYPE = "crm.quarantine.redriven.v1"
SOURCE = "urn:crm-hub:redrive"


@dataclass(frozen=True)
class QuarantineEntry:
    """What a re-drive needs of one quarantine row of the read model."""

    event_id: str
    quarantine_id: str
    stage: str
    connector: str | None
    source_file: str | None
    source_row: int | None
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    attempts: int  # re-drives already recorded


@dataclass(frozen=True)
class RedriveResult:
    quarantine_id: str
    action: str  # republished | reread | refused
    target: str  # where it went, or why it was refused


def redrive_attempt_of(headers: Iterable[tuple[str, bytes | None]] | None) -> int | None:
    """The re-drive attempt an event carries (None for an original event)."""
    text = header_value(list(headers or []), H_REDRIVE_ATTEMPT)
    try:
        return int(text) if text else None
    except ValueError:
        return None


class Redriver:
    """Re-drives entries and records each re-drive. One per command run."""

    def __init__(self, settings: Settings, *, api_url: str | None, rule: str | None) -> None:
        self.settings = settings
        self.api_url = api_url
        self.rule = rule
        self.bootstrap = settings.require_bootstrap()
        self.requested_by = getpass.getuser()
        ensure_topics(
            self.bootstrap,
            {topics.QUARANTINE_REDRIVES: topics.TOPIC_SPECS[topics.QUARANTINE_REDRIVES]},
        )
        self._producer = Producer(
            {"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5}
        )
        self._registry = registry_client(settings.effective_registry_url)
        text = load_schema_text(schema_path(settings.schemas_dir, "common/QuarantineRedriven"))
        self._codec = AvroCodec(self._registry, topics.QUARANTINE_REDRIVES, text)

    def close(self) -> None:
        self._producer.flush(30)
        self._registry.__exit__()  # type: ignore[no-untyped-call]  # closes its HTTP client

    def __enter__(self) -> Redriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(self, entries: Sequence[QuarantineEntry]) -> list[RedriveResult]:
        results: list[RedriveResult] = []
        rewinds: dict[tuple[str, str], list[QuarantineEntry]] = {}
        for entry in entries:
            if entry.source_topic is not None and entry.source_offset is not None:
                results.append(self._republish(entry))
            elif entry.stage == STAGE_CONNECTOR and entry.source_file and entry.connector:
                rewinds.setdefault((entry.connector, entry.source_file), []).append(entry)
            else:
                results.append(
                    RedriveResult(
                        entry.quarantine_id,
                        "refused",
                        "no source position to re-drive from: ask the sender to deliver it "
                        "again, or reset the connector's offsets (crmhub connectors offsets)",
                    )
                )
        for (connector, file), group in sorted(rewinds.items()):
            results += self._rewind(connector, file, group)
        self._producer.flush(30)
        return results

    # -- processor and projection stages: publish the original event again ---------------------

    def _original(self, entry: QuarantineEntry) -> Message:
        assert entry.source_topic is not None
        assert entry.source_offset is not None
        tp = TopicPartition(entry.source_topic, entry.source_partition or 0, entry.source_offset)
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"hub-redrive-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([tp])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise RetriableError(f"cannot read {entry.source_topic}: {err.name()}")
                if msg.offset() == entry.source_offset:
                    return msg
                break  # compacted or retention moved past it
        finally:
            consumer.close()
        raise ConfigError(
            f"quarantine {entry.quarantine_id[:12]}: the original event is no longer at "
            f"{entry.source_topic}:{entry.source_partition}:{entry.source_offset} (retention)"
        )

    def _republish(self, entry: QuarantineEntry) -> RedriveResult:
        try:
            msg = self._original(entry)
        except HubError as exc:
            return RedriveResult(entry.quarantine_id, "refused", exc.message)
        attempt = entry.attempts + 1
        raw: list[tuple[str, bytes]] = [
            (str(k), v) for k, v in list(msg.headers() or []) if isinstance(v, bytes)
        ]
        original_id = header_value(raw, "ce_id") or entry.event_id
        new_id = deterministic_id(original_id, "redrive", str(attempt))
        headers: list[tuple[str, bytes]] = []
        for key, value in raw:
            if key in (H_REDRIVE_OF, H_REDRIVE_ATTEMPT):
                continue
            headers.append((key, new_id.encode() if key == "ce_id" else value))
        if header_value(raw, H_TRACE_ID) is None:
            headers.append((H_TRACE_ID, original_id.encode()))
        headers += [
            (H_REDRIVE_OF, entry.quarantine_id.encode()),
            (H_REDRIVE_ATTEMPT, str(attempt).encode()),
        ]
        where = self._produce(entry.source_topic or "", msg.key(), msg.value(), headers)
        self._record(entry, "republished", where, attempt)
        return RedriveResult(entry.quarantine_id, "republished", where)

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> str:
        delivered: list[str] = []
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err.name())
            else:
                delivered.append(f"{msg.topic()}:{msg.partition()}:{msg.offset()}")

        self._producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,  # type: ignore[arg-type]  # a list of pairs is accepted
            on_delivery=on_delivery,
        )
        if self._producer.flush(30) or errors or not delivered:
            raise RetriableError(
                f"re-drive to {topic} not acknowledged ({', '.join(errors) or 'timeout'})"
            )
        return delivered[0]

    # -- file connectors: read the row again ----------------------------------------------------

    def _rewind(
        self, connector: str, file: str, entries: list[QuarantineEntry]
    ) -> list[RedriveResult]:
        row = min(e.source_row or 1 for e in entries)
        target = f"{connector}/{file}@{row}"
        try:
            self._rewind_connector(connector, file, row)
        except HubError as exc:
            return [RedriveResult(e.quarantine_id, "refused", exc.message) for e in entries]
        for entry in entries:
            self._record(entry, "reread", target, entry.attempts + 1)
        return [RedriveResult(e.quarantine_id, "reread", target) for e in entries]

    def _rewind_connector(self, connector: str, file: str, row: int) -> None:
        if not self.api_url:
            raise ConfigError("no hub API to rewind the connector through (is `crmhub up` on?)")
        with httpx.Client(base_url=self.api_url, timeout=30) as http:
            offsets = _ok(http.get(f"/connectors/{connector}/offsets"), connector).json()
            partition = {"file": file}
            stored = next(
                (o["offset"] for o in offsets["offsets"] if o["partition"] == partition), None
            )
            if stored is None:
                raise ConfigError(f"connector {connector} has no offset for {file}")
            state = _state(http, connector)
            _ok(http.put(f"/connectors/{connector}/stop"), connector)
            _wait_state(http, connector, "STOPPED")
            rewound = {**stored, "position": max(0, row - 1), "done": False}
            body = {"offsets": [{"partition": partition, "offset": rewound}]}
            _ok(http.patch(f"/connectors/{connector}/offsets", json=body), connector)
            if state != "STOPPED":
                _ok(http.put(f"/connectors/{connector}/resume"), connector)

    # -- the record of it ------------------------------------------------------------------------

    def _record(self, entry: QuarantineEntry, action: str, target: str, attempt: int) -> None:
        now = datetime.now(UTC)
        redrive_id = deterministic_id("redrive", entry.quarantine_id, str(attempt))
        value = {
            "redrive_id": redrive_id,
            "quarantine_id": entry.quarantine_id,
            "quarantine_event_id": entry.event_id,
            "stage": entry.stage,
            "action": action,
            "target": target,
            "attempt": attempt,
            "rule_id": self.rule,
            "requested_by": self.requested_by,
            "requested_at": now,
        }
        meta = EventMeta(redrive_id, SOURCE, REDRIVEN_TYPE, entry.quarantine_id, now)
        self._produce(
            topics.QUARANTINE_REDRIVES,
            entry.quarantine_id.encode(),
            self._codec.encode(value),
            meta.to_headers(),
        )


def _ok(response: httpx.Response, connector: str) -> httpx.Response:
    if response.status_code >= 400:
        try:
            message = str(response.json().get("message"))
        except ValueError:
            message = f"HTTP {response.status_code}"
        raise ConfigError(f"connector {connector}: {message}")
    return response


def _state(http: httpx.Client, connector: str) -> str:
    body: Any = _ok(http.get(f"/connectors/{connector}/status"), connector).json()
    return str(body["connector"]["state"])


def _wait_state(http: httpx.Client, connector: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _state(http, connector) == wanted:
            return
        time.sleep(0.2)
    raise RetriableError(f"connector {connector} did not reach {wanted} in {timeout:.0f} s")


__all__ = [
    "H_REDRIVE_ATTEMPT",
    "H_REDRIVE_OF",
    "QuarantineEntry",
    "RedriveResult",
    "Redriver",
    "redrive_attempt_of",
]
