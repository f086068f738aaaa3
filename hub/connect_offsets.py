"""Source offsets in a compacted Kafka topic, keyed the way Kafka Connect keys them:
``["<connector>", {<source partition>}]`` -> ``{<source offset>}`` as JSON.

A connector's offset is written only after every record before it has been acknowledged
by the broker, so a restart neither skips a record nor loses one. The last value per key
wins when the topic is replayed.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from hub.errors import RetriableError
from hub.topics import CONNECT_OFFSETS

OffsetKey = tuple[str, str]  # (connector, canonical JSON of the source partition)


def _key(connector: str, partition: dict[str, Any]) -> bytes:
    return json.dumps([connector, partition], sort_keys=True, separators=(",", ":")).encode()


class OffsetStore:
    def __init__(self, bootstrap: str, topic: str = CONNECT_OFFSETS) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        self._offsets: dict[bytes, dict[str, Any]] = {}
        self._closed = False

    def load(self, timeout: float = 30.0) -> None:
        """Replay the topic to its end (assign, not subscribe: no group join needed)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "hub-offsets-reader",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            tp = TopicPartition(self.topic, 0, OFFSET_BEGINNING)
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high <= low:
                return
            consumer.assign([tp])
            position = low
            while position < high:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise RetriableError(f"cannot read {self.topic}: {err.name()}")
                position = (msg.offset() or 0) + 1
                key = msg.key()
                if key is None:
                    continue
                value = msg.value()
                if value is None:
                    self._offsets.pop(key, None)  # tombstone: offset reset
                else:
                    self._offsets[key] = json.loads(value)
        finally:
            consumer.close()

    def get(self, connector: str, partition: dict[str, Any]) -> dict[str, Any] | None:
        return self._offsets.get(_key(connector, partition))

    def all_for(self, connector: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        out = []
        for key, value in self._offsets.items():
            name, part = json.loads(key)
            if name == connector:
                out.append((part, value))
        return out

    def commit(self, connector: str, partition: dict[str, Any], offset: dict[str, Any]) -> None:
        """Write and wait for the acknowledgement; raises RetriableError if not durable."""
        key = _key(connector, partition)
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err.name())

        self._producer.produce(
            self.topic, key=key, value=json.dumps(offset).encode(), on_delivery=on_delivery
        )
        remaining = self._producer.flush(30)
        if remaining or errors:
            raise RetriableError(
                f"offset commit to {self.topic} not acknowledged ({', '.join(errors) or 'timeout'})"
            )
        self._offsets[key] = offset

    def close(self) -> None:
        """Release the producer. Only once nothing is pending: librdkafka's close waits for
        undelivered messages up to their timeout (300 s, measured with no broker); a store
        whose last commit failed keeps its producer until it is garbage. A second call does
        nothing."""
        if self._closed:
            return
        self._closed = True
        if self._producer.flush(10) == 0:
            self._producer.close()
