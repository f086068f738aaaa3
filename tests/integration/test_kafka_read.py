"""hub.kafka_read.read_until_quiet on the real broker: every message of a topic whose
partitions are partly empty, and of explicit partitions from given offsets."""

from __future__ import annotations

import pytest
from confluent_kafka import Message, Producer, TopicPartition

# The documented path; confluent_kafka.admin imports NewTopic without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hub.errors import ConfigError
from hub.kafka_read import read_until_quiet

pytestmark = pytest.mark.integration


def make_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(15)


def key_number(msg: Message) -> int:
    key = msg.key()
    assert key is not None  # every message here is produced with a key
    return int(key)


def test_reads_every_message_with_empty_partitions(kafka_bootstrap: str, unique: str) -> None:
    topic = f"it-read-{unique}"
    make_topic(kafka_bootstrap, topic, 4)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for i in range(25):  # partitions 0 and 2 only; 1 and 3 stay empty
        producer.produce(topic, key=str(i).encode(), value=b"v", partition=(i % 2) * 2)
    assert producer.flush(15) == 0
    got = list(read_until_quiet(kafka_bootstrap, topic, group=f"g-{unique}"))
    assert sorted(key_number(m) for m in got) == list(range(25))
    # From given offsets: what follows them, nothing before.
    later = list(
        read_until_quiet(
            kafka_bootstrap,
            [TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 0)],
            group=f"g2-{unique}",
        )
    )
    assert [key_number(m) for m in later] == [i for i in range(25) if i % 2 == 0][10:]


def test_a_missing_topic_is_a_config_error(kafka_bootstrap: str, unique: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        list(read_until_quiet(kafka_bootstrap, f"it-missing-{unique}", group=f"g-{unique}"))
