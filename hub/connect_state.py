"""The connect cluster's state in compacted Kafka topics, kept the way Kafka Connect keeps it.

``_hub-connect-configs`` (JSON key string -> JSON value, a null value is a tombstone)::

    connector-<name>          -> {"properties": {<connector config, references unresolved>}}
    target-state-<name>       -> {"state": "STARTED" | "PAUSED" | "STOPPED"}
    restart-connector-<name>  -> {"include-tasks": bool, "only-failed": bool}
    placement-<name>          -> {"slot": n}   (hub only: which group partition runs it)

``_hub-connect-status``::

    status-connector-<name>   -> {"state": ..., "trace": str | null, "worker_id": str}
    status-task-<name>-<id>   -> likewise
    topic-<topic>-connector-<name> -> {"topic": {"name", "connector", "task", "discoverTimestamp"}}

``_hub-connect-offsets``: ``["<connector>", {partition}]`` -> ``{offset}`` (see
hub/connect_offsets.py).

``start()`` replays the three topics to their ends (``assign``, no group: the embedded
broker delays group joins), then a background thread follows them, so every process on the
cluster sees the others' writes. A write is produced, flushed and acknowledged, and returns
once this process's follower has applied it: an answer never reports something the log
does not hold, and a process reads its own writes in log order.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
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
from hub.connect_offsets import _key as offset_key
from hub.errors import RetriableError

log = logging.getLogger(__name__)

TARGET_STATES = ("STARTED", "PAUSED", "STOPPED")
STATUS_STATES = ("UNASSIGNED", "RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING")
_COMPACTED = (1, {"cleanup.policy": "compact"})


@dataclass(frozen=True)
class Status:
    state: str
    worker_id: str
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "worker_id": self.worker_id}
        if self.trace is not None:
            out["trace"] = self.trace
        return out


@dataclass(frozen=True)
class RestartRequest:
    request_id: int  # offset of the record in the configs topic: unique per request
    include_tasks: bool
    only_failed: bool


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class ConnectState:
    """Connector configs, target states, statuses and offsets, backed by Kafka."""

    def __init__(
        self,
        bootstrap: str,
        *,
        configs_topic: str = topics.CONNECT_CONFIGS,
        status_topic: str = topics.CONNECT_STATUS,
        offsets_topic: str = topics.CONNECT_OFFSETS,
        write_timeout: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.configs_topic = configs_topic
        self.status_topic = status_topic
        self.offsets_topic = offsets_topic
        self.write_timeout = write_timeout
        self._cond = threading.Condition()  # guards every dict below
        self._write_lock = threading.Lock()
        self._configs: dict[str, dict[str, Any]] = {}
        self._targets: dict[str, str] = {}
        self._restarts: dict[str, RestartRequest] = {}
        self._slots: dict[str, int] = {}  # connector -> placement slot
        self._statuses: dict[str, Status] = {}  # "<name>" or "<name>/<task>"
        self._topics: dict[str, dict[str, int]] = {}  # connector -> topic -> discovered ms
        self._offsets: dict[bytes, dict[str, Any]] = {}
        self._applied: dict[str, int] = {}  # topic -> next offset applied
        self._version = 0
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.cluster_id: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def _topic_names(self) -> tuple[str, str, str]:
        return (self.configs_topic, self.status_topic, self.offsets_topic)

    def start(self, timeout: float = 30.0) -> ConnectState:
        """Create the topics if missing, replay them to their ends, then follow them."""
        ensure_topics(self.bootstrap, dict.fromkeys(self._topic_names, _COMPACTED))
        self._producer = Producer(
            {"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 0}
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"hub-connect-state-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer = consumer
        self.cluster_id = consumer.list_topics(timeout=timeout).cluster_id
        self._replay(consumer, time.monotonic() + timeout)
        self._thread = threading.Thread(target=self._follow, name="connect-state", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(self.write_timeout)
            self._producer = None

    def __enter__(self) -> ConnectState:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _replay(self, consumer: Consumer, deadline: float) -> None:
        highs: dict[str, int] = {}
        for topic in self._topic_names:
            last = "no answer"
            while topic not in highs:
                if time.monotonic() > deadline:
                    raise RetriableError(f"connect state: no watermark for {topic} ({last})")
                try:
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, 0), timeout=2.0, cached=False
                    )
                    highs[topic] = int(high)
                except KafkaException as exc:  # metadata may lag the topic's creation
                    last = str(exc)
                    time.sleep(0.1)
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in self._topic_names])
        pending = {t for t, high in highs.items() if high > 0}
        while pending:
            if time.monotonic() > deadline:
                raise RetriableError(
                    f"connect state: replay of {', '.join(sorted(pending))} timed out"
                )
            for message in consumer.consume(500, 0.2):
                topic = message.topic() or ""
                err = message.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(topic)  # at the end (compaction may leave gaps)
                        continue
                    raise RetriableError(f"connect state: cannot read {topic}: {err.name()}")
                self._apply(message)
                if self._applied.get(topic, 0) >= highs[topic]:
                    pending.discard(topic)
        log.info(
            "connect state: replayed %s: %d connectors",
            ", ".join(self._topic_names),
            len(self._configs),
        )

    def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stop.is_set():
            try:
                messages = consumer.consume(500, 0.1)
            except KafkaException as exc:
                log.warning("connect state: follower: %s", exc.args[0] if exc.args else exc)
                self._stop.wait(0.5)
                continue
            for message in messages:
                err = message.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("connect state: follower: %s", err.name())
                    continue
                self._apply(message)

    # -- applying records -----------------------------------------------------------------

    def _apply(self, message: KafkaMessage) -> None:
        topic, offset = message.topic() or "", message.offset() or 0
        raw_key, raw_value = message.key(), message.value()
        with self._cond:
            try:
                if raw_key is not None:
                    value = json.loads(raw_value) if raw_value is not None else None
                    if topic == self.offsets_topic:
                        self._apply_offset(raw_key, value)
                    elif topic == self.configs_topic:
                        self._apply_config(raw_key.decode(), value, offset)
                    elif topic == self.status_topic:
                        self._apply_status(raw_key.decode(), value)
            except (ValueError, TypeError, KeyError, AttributeError):
                log.warning("connect state: skipped a malformed record in %s at %d", topic, offset)
            self._applied[topic] = max(self._applied.get(topic, 0), offset + 1)
            self._version += 1
            self._cond.notify_all()

    def _apply_offset(self, key: bytes, value: Any) -> None:
        if value is None:
            self._offsets.pop(key, None)
        else:
            self._offsets[key] = dict(value)

    def _apply_config(self, key: str, value: Any, offset: int) -> None:
        if key.startswith("connector-"):
            name = key.removeprefix("connector-")
            if value is None:
                self._configs.pop(name, None)
            else:
                self._configs[name] = dict(value["properties"])
        elif key.startswith("target-state-"):
            name = key.removeprefix("target-state-")
            state = None if value is None else str(value.get("state.v2") or value["state"])
            if state in TARGET_STATES:
                self._targets[name] = state
            else:
                self._targets.pop(name, None)
        elif key.startswith("placement-"):
            name = key.removeprefix("placement-")
            if value is None:
                self._slots.pop(name, None)
            else:
                self._slots[name] = int(value["slot"])
        elif key.startswith("restart-connector-") and value is not None:
            name = key.removeprefix("restart-connector-")
            self._restarts[name] = RestartRequest(
                offset, bool(value.get("include-tasks")), bool(value.get("only-failed"))
            )

    def _apply_status(self, key: str, value: Any) -> None:
        if key.startswith("status-connector-"):
            slot = key.removeprefix("status-connector-")
        elif key.startswith("status-task-"):
            name, _, task = key.removeprefix("status-task-").rpartition("-")
            slot = f"{name}/{int(task)}"
        elif key.startswith("topic-") and value is not None:
            info = value["topic"]
            self._topics.setdefault(str(info["connector"]), {})[str(info["name"])] = int(
                info.get("discoverTimestamp", 0)
            )
            return
        elif key.startswith("topic-"):
            topic, _, name = key.removeprefix("topic-").rpartition("-connector-")
            self._topics.get(name, {}).pop(topic, None)
            return
        else:
            return
        if value is None:
            self._statuses.pop(slot, None)
        else:
            self._statuses[slot] = Status(
                str(value["state"]), str(value.get("worker_id") or ""), value.get("trace")
            )

    # -- reads ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows with every record applied (for waiters)."""
        with self._cond:
            return self._version

    def wait_for_change(self, since: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._version != since, timeout)
            return self._version

    def connectors(self) -> list[str]:
        with self._cond:
            return sorted(self._configs)

    def config(self, name: str) -> dict[str, Any] | None:
        with self._cond:
            config = self._configs.get(name)
            return None if config is None else dict(config)

    def target_state(self, name: str) -> str:
        with self._cond:
            return self._targets.get(name, "STARTED")

    def slot_of(self, name: str) -> int:
        """The connector's placement slot: workers run the connectors whose slot maps to a
        partition of the group topic they were assigned (hub/connect_group.py). Chosen at
        creation as the lowest free slot, so connectors spread evenly; a connector created
        before placements existed gets a stable hash of its name."""
        with self._cond:
            slot = self._slots.get(name)
        return slot if slot is not None else zlib.crc32(name.encode())

    def _free_slot(self) -> int:
        with self._cond:
            used = {self._slots[n] for n in self._configs if n in self._slots}
        slot = 0
        while slot in used:
            slot += 1
        return slot

    def restart_request(self, name: str) -> RestartRequest | None:
        with self._cond:
            return self._restarts.get(name)

    def connector_status(self, name: str) -> Status | None:
        with self._cond:
            return self._statuses.get(name)

    def task_status(self, name: str, task: int = 0) -> Status | None:
        with self._cond:
            return self._statuses.get(f"{name}/{task}")

    def topics_of(self, name: str) -> list[str]:
        with self._cond:
            return sorted(self._topics.get(name, {}))

    def offsets(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        with self._cond:
            items = list(self._offsets.items())
        out = []
        for key, value in items:
            connector, partition = json.loads(key)
            if connector == name:
                out.append((partition, value))
        return sorted(out, key=lambda item: json.dumps(item[0], sort_keys=True))

    # -- writes ---------------------------------------------------------------------------

    def _write(self, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
        """Produce, wait for the acknowledgement, then for this process's follower to have
        applied the records (so a read after a write sees it, in log order)."""
        if self._producer is None:
            raise RetriableError("connect state is not started")
        errors: list[str] = []
        last = [-1]

        def on_delivery(err: KafkaError | None, msg: KafkaMessage) -> None:
            if err is not None:
                errors.append(err.name())
            else:
                last[0] = max(last[0], msg.offset() or 0)

        with self._write_lock:
            for key, value in records:
                self._producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            pending = self._producer.flush(self.write_timeout)
        if pending or errors:
            raise RetriableError(
                f"connect state: write to {topic} not acknowledged "
                f"({', '.join(sorted(set(errors))) or 'timeout'})"
            )
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._applied.get(topic, 0) > last[0], self.write_timeout
            ):
                raise RetriableError(f"connect state: write to {topic} not read back in time")

    def _configs_write(self, records: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        self._write(
            self.configs_topic,
            [(k.encode(), None if v is None else _dump(v)) for k, v in records],
        )

    def _status_write(self, records: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        self._write(
            self.status_topic,
            [(k.encode(), None if v is None else _dump(v)) for k, v in records],
        )

    def put_config(
        self, name: str, config: dict[str, Any], *, initial_target: str | None = None
    ) -> None:
        records: list[tuple[str, dict[str, Any] | None]] = []
        if initial_target is not None:
            records.append((f"target-state-{name}", {"state": initial_target}))
        with self._cond:
            placed = name in self._slots
        if not placed:
            records.append((f"placement-{name}", {"slot": self._free_slot()}))
        records.append((f"connector-{name}", {"properties": config}))
        self._configs_write(records)

    def delete_connector(self, name: str) -> None:
        self._configs_write(
            [
                (f"connector-{name}", None),
                (f"target-state-{name}", None),
                (f"placement-{name}", None),
            ]
        )
        self._status_write(
            [(f"status-connector-{name}", None), (f"status-task-{name}-0", None)]
            + [(f"topic-{t}-connector-{name}", None) for t in self.topics_of(name)]
        )

    def set_target(self, name: str, state: str) -> None:
        if state not in TARGET_STATES:
            raise ValueError(state)
        self._configs_write([(f"target-state-{name}", {"state": state})])

    def request_restart(self, name: str, *, include_tasks: bool, only_failed: bool) -> None:
        self._configs_write(
            [
                (
                    f"restart-connector-{name}",
                    {"include-tasks": include_tasks, "only-failed": only_failed},
                )
            ]
        )

    def put_status(self, name: str, status: Status, *, with_task: bool = True) -> None:
        value = {"state": status.state, "trace": status.trace, "worker_id": status.worker_id}
        records: list[tuple[str, dict[str, Any] | None]] = [(f"status-connector-{name}", value)]
        if with_task:
            records.append((f"status-task-{name}-0", value))
        self._status_write(records)

    def delete_status(self, name: str) -> None:
        self._status_write([(f"status-connector-{name}", None), (f"status-task-{name}-0", None)])

    def put_topic(self, name: str, topic: str) -> None:
        if topic in self.topics_of(name):
            return
        record = {
            "topic": {
                "name": topic,
                "connector": name,
                "task": 0,
                "discoverTimestamp": int(time.time() * 1000),
            }
        }
        self._status_write([(f"topic-{topic}-connector-{name}", record)])

    def write_offsets(
        self, name: str, offsets: list[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        """Alter (an offset) or reset (None: a tombstone) source partitions of ``name``."""
        self._write(
            self.offsets_topic,
            [(offset_key(name, p), None if o is None else _dump(o)) for p, o in offsets],
        )

    def reset_offsets(self, name: str) -> None:
        parts = [p for p, _o in self.offsets(name)]
        if parts:
            self.write_offsets(name, [(p, None) for p in parts])


__all__ = ["STATUS_STATES", "TARGET_STATES", "ConnectState", "RestartRequest", "Status"]
