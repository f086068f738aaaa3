"""Raw confluent-kafka ceilings on the embedded broker: produce, then consume -> produce.
Nothing of the hub runs here; these bound what any stage built on the same client and
broker can reach on this machine."""

from __future__ import annotations

import os
import time

from confluent_kafka import Producer

from bench.env import PARTITIONS, Env
from bench.report import Row

RECORDS = 300_000
RECORD_BYTES = 300
LINGER_MS = 10

# The headers Producer.produce() takes and Message.headers() returns.
Headers = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]


def _headers(i: int) -> list[tuple[str, str | bytes | None]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"00000000-0000-5000-8000-{i:012d}".encode()),
        ("ce_source", b"urn:crm-hub:bench"),
        ("ce_type", b"crm.bench.record.v1"),
        ("ce_time", b"2024-06-01T12:00:00Z"),
        ("content-type", b"application/avro"),
    ]


def _producer(env: Env) -> Producer:
    return Producer(
        {
            "bootstrap.servers": env.bootstrap,
            "acks": "all",
            "linger.ms": LINGER_MS,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
        }
    )


def _produce(
    producer: Producer, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def raw_produce(env: Env, topic: str, n: int = RECORDS) -> Row:
    """N records of RECORD_BYTES with CloudEvents-like headers; timer from the first
    produce() to the return of flush() (every record acknowledged, acks=all)."""
    payloads = [os.urandom(RECORD_BYTES) for _ in range(64)]
    keys = [f"lead-{i:08d}".encode() for i in range(n)]
    headers = [_headers(i) for i in range(n)]  # built before the timer starts
    producer = _producer(env)
    producer.list_topics(topic, timeout=10)  # connection and metadata: warm-up
    t0 = time.monotonic()
    for i in range(n):
        _produce(producer, topic, keys[i], payloads[i & 63], headers[i])
        if i & 1023 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.monotonic() - t0
    if remaining:
        raise RuntimeError(f"raw produce: {remaining} records not acknowledged")
    return Row(
        "ceiling.produce",
        "Kafka produce (confluent-kafka, raw)",
        n / seconds,
        "msgs/s",
        count=n,
        seconds=seconds,
        note=(
            f"{n:,} records of {RECORD_BYTES} B + 6 headers, {PARTITIONS} partitions, "
            f"acks=all, linger.ms={LINGER_MS}; first produce() to flush() returned. "
            "Keys and headers built before the timer; producer connected before it."
        ),
    )


def consume_produce(env: Env, source: str, dest: str, n: int = RECORDS) -> Row:
    """Consume ``source`` (assign, not subscribe) and produce each record to ``dest``; timer
    from the first consumed batch to flush() after the n-th record."""
    consumer = env.consumer(**{"fetch.max.bytes": 52_428_800})
    producer = _producer(env)
    producer.list_topics(dest, timeout=10)
    done = 0
    t0: float | None = None
    try:
        env.assign_from_start(consumer, [source])
        deadline = time.monotonic() + 120
        while done < n and time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.5)
            if not batch:
                continue
            if t0 is None:
                t0 = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    continue
                _produce(producer, dest, msg.key(), msg.value(), msg.headers())
                done += 1
            producer.poll(0)
        remaining = producer.flush(120)
        seconds = time.monotonic() - (t0 or time.monotonic())
    finally:
        consumer.close()
    if remaining or done < n:
        raise RuntimeError(f"consume->produce: {done} of {n} consumed, {remaining} unacknowledged")
    return Row(
        "ceiling.consume_produce",
        "Kafka consume→produce (confluent-kafka, raw)",
        n / seconds,
        "msgs/s",
        count=n,
        seconds=seconds,
        note=(
            f"{n:,} records consumed with assign() from the beginning (no group join) and "
            "produced to another topic with their keys and headers, acks=all; first consumed "
            "batch to flush() returned."
        ),
    )
