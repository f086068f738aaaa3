"""Reading a topic to its end without joining a consumer group.

The embedded broker's reported high watermarks can lag the log it serves (measured: 49,993
reported for 50,000 consumed), so "the end" is where every partition has reported its end
(partition EOF) and the topic has then stayed quiet a moment, not a watermark.
Partitions are assigned, not subscribed: tansu delays every group join by half the session
timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from hub.errors import ConfigError

log = logging.getLogger(__name__)


def read_until_quiet(
    bootstrap: str,
    source: str | Iterable[TopicPartition],
    *,
    group: str,
    quiet: float = 0.5,
    eof_timeout: float = 30.0,
) -> Iterator[Message]:
    """Every message of ``source`` (a topic name: all its partitions from the beginning;
    or explicit partitions and offsets): until every partition has reported its end once
    and nothing has arrived for ``quiet`` seconds since. (The quiet clock starts at the
    last partition's end: a slow first fetch on a loaded machine is not mistaken for an
    empty partition.) A partition that has not reported its end after ``eof_timeout``
    seconds (its leader unreachable) is logged and no longer waited for: the read ends on
    the quiet clock alone. Error events are skipped; a named topic that does not exist is
    a ConfigError."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        if isinstance(source, str):
            md = consumer.list_topics(source, timeout=10)
            meta = md.topics.get(source)
            if meta is None or meta.error is not None:
                raise ConfigError(f"topic {source} does not exist")
            partitions = [TopicPartition(source, p, OFFSET_BEGINNING) for p in meta.partitions]
        else:
            partitions = list(source)
        if not partitions:
            return
        consumer.assign(partitions)
        waiting = {(tp.topic, tp.partition) for tp in partitions}
        quiet_since = time.monotonic()
        give_up = quiet_since + eof_timeout
        while waiting or time.monotonic() - quiet_since < quiet:
            batch = consumer.consume(5000, 0.1)
            for msg in batch:
                err = msg.error()
                if err is None:
                    quiet_since = time.monotonic()
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    waiting.discard((msg.topic(), msg.partition()))
            if waiting:
                quiet_since = time.monotonic()
                if quiet_since > give_up:
                    log.warning(
                        "no end reported in %.0f s by %s; reading on until quiet",
                        eof_timeout,
                        ", ".join(f"{t}[{p}]" for t, p in sorted(waiting)),
                    )
                    waiting.clear()
    finally:
        consumer.close()
