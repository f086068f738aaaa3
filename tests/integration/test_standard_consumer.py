"""A downstream app needs no hub library: the Confluent ``AvroDeserializer`` pointed at the
hub's registry decodes the values, and the ``cloudevents`` package's Kafka binding (binary
content mode) reads the envelope from the headers. Events are written by the hub's own
code path: the ConnectorRunner (raw topic) and the ValidationStage (clean and quarantine
topics)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.v1 import kafka as kafka_v1
from confluent_kafka import Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.spreadsheet.reader import fingerprint
from hub.broker import ensure_topics
from hub.events import deterministic_id
from hub.processors.validation import InMessage, ValidationStage
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, read_topic
from tests.integration.test_connector_resume import CONNECTOR, Topics, build_runner

pytestmark = pytest.mark.integration

CSV = """Lead ID,First Name,Last Name,E-mail,Phone,Company,Country,Created
L-1,Ada,Lovelace,ada@Example.COM,(415) 555-0123,Analytical Engines,USA,2024-03-05
L-2,Grace,Hopper,grace@example.com,+1 212 555 0199,Navy,US,2024-03-06
L-3,Alan,Turing,not-an-email,,Bletchley,GB,2024-03-07
"""
FILE = "leads.csv"
SOURCE = f"urn:crm-hub:connector:{CONNECTOR}"


class AvroData:
    """The data half of a cloudevents ``Format``: the value is Confluent-framed Avro,
    decoded by the standard AvroDeserializer (binary mode needs only ``read_data``)."""

    def __init__(self, deserializer: AvroDeserializer, topic: str) -> None:
        self.deserializer = deserializer
        self.ctx = SerializationContext(topic, MessageField.VALUE)

    def read_data(self, body: bytes, datacontenttype: str | None) -> dict[str, Any]:
        assert datacontenttype == "application/avro"
        value = self.deserializer(body, self.ctx)
        assert isinstance(value, dict)  # a record
        return value

    def read(self, *_: Any) -> BaseCloudEvent:
        raise NotImplementedError("structured mode is not used by the hub")

    def write(self, *_: Any) -> bytes:
        raise NotImplementedError

    def write_data(self, *_: Any) -> bytes:
        raise NotImplementedError

    def get_content_type(self) -> str:
        raise NotImplementedError


def downstream_read(
    registry_url: str, msg: Message
) -> tuple[BaseCloudEvent, kafka_v1.KafkaMessage, dict[str, Any]]:
    """What a downstream app does with one message, using only standard packages: the
    CloudEvent (cloudevents 2.x core binding), plus the 1.x-style binding's view of the
    same message for apps still on that API."""
    topic = msg.topic()
    assert topic is not None
    with SchemaRegistryClient({"url": registry_url}) as client:
        deserializer = AvroDeserializer(client)
        fmt = AvroData(deserializer, topic)
        # A consumed message's headers are a list of pairs (the dict form is produce()'s).
        pairs = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
        headers = {k: v for k, v in pairs if v is not None}
        value = msg.value()
        assert value is not None  # every hub event has a value
        event = from_binary(KafkaMessage(headers=headers, key=msg.key(), value=value), fmt)
        legacy_msg = kafka_v1.KafkaMessage(headers=headers, key=msg.key(), value=value)
        legacy = kafka_v1.from_binary(
            legacy_msg, data_unmarshaller=lambda body: deserializer(body, fmt.ctx)
        )
    legacy_attrs = dict(legacy.get_attributes())
    legacy_attrs["data"] = legacy.get_data()
    return event, legacy_msg, legacy_attrs


def test_a_downstream_app_reads_hub_topics_with_standard_clients(
    kafka_bootstrap: str,
    registry_url: str,
    registry: SchemaRegistryClient,
    unique: str,
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / FILE).write_text(CSV, encoding="utf-8")
    fp = fingerprint(drop / FILE)
    topics = Topics.make(kafka_bootstrap, f"std-{unique}")
    clean_topic = f"it.clean.std-{unique}"
    ensure_topics(kafka_bootstrap, {clean_topic: (2, {})})

    # 1. The connector path writes the raw topic.
    before = datetime.now(UTC)
    assert build_runner(kafka_bootstrap, registry, drop, topics).run_once() == 3
    after = datetime.now(UTC)
    raw = read_topic(kafka_bootstrap, topics.raw, expect=3)
    assert len(raw) == 3

    # 2. The validation stage turns them into clean and quarantine events.
    stage = ValidationStage(
        registry,
        schemas_dir=REPO_ROOT / "schemas",
        policies_dir=REPO_ROOT / "policies",
        source_topic=topics.raw,
        clean_topic=clean_topic,
        quarantine_topic=topics.quarantine,
    )
    batch = [
        InMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or [])  # type: ignore[arg-type]
        for m in raw
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for out in stage.process(batch):
        # produce() takes any list of pairs (its stub's List is invariant in the value type).
        headers = cast("list[tuple[str, str | bytes | None]]", out.headers)
        producer.produce(out.topic, key=out.key, value=out.value, headers=headers)
    assert producer.flush(15) == 0

    # 3. The downstream app: plain consumer, standard deserializer and binding.
    raw_events: dict[str, tuple[BaseCloudEvent, str]] = {}
    rows = {"L-1": 2, "L-2": 3, "L-3": 4}
    for msg in raw:
        event, legacy_msg, legacy = downstream_read(registry_url, msg)
        attrs = event.get_attributes()
        lead_id = attrs["partitionkey"]
        expected_id = deterministic_id(CONNECTOR, f"{FILE}@{fp[:16]}:{rows[lead_id]}")
        assert attrs["id"] == expected_id
        assert attrs["source"] == SOURCE
        assert attrs["type"] == "crm.sales.lead.captured.v1"
        assert attrs["subject"] == lead_id
        assert attrs["specversion"] == "1.0"
        assert attrs["datacontenttype"] == "application/avro"
        assert isinstance(attrs["time"], datetime)
        assert before - timedelta(seconds=1) <= attrs["time"] <= after + timedelta(seconds=1)
        # The 1.x-style binding sees the same envelope and data.
        assert legacy_msg.key == lead_id.encode()
        assert {k: legacy[k] for k in ("id", "source", "type", "subject", "specversion")} == {
            k: attrs[k] for k in ("id", "source", "type", "subject", "specversion")
        }
        assert legacy["data"] == event.get_data()
        raw_events[lead_id] = (event, attrs["id"])

    assert raw_events["L-1"][0].get_data() == {
        "lead_id": "L-1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@Example.COM",
        "phone": "(415) 555-0123",
        "company": "Analytical Engines",
        "job_title": None,
        "country": "USA",
        "lead_source": None,
        "lead_status": None,
        "created_on": "2024-03-05",
        "owner": None,
        "notes": None,
    }

    clean = read_topic(kafka_bootstrap, clean_topic, expect=2)
    assert len(clean) == 2
    policy_version = stage.policy_version
    decoded_clean = {}
    for msg in clean:
        event, _, _ = downstream_read(registry_url, msg)
        attrs = event.get_attributes()
        lead_id = attrs["subject"]
        raw_event, raw_id = raw_events[lead_id]
        assert attrs["id"] == deterministic_id(raw_id, "crm.sales.lead.validated.v1")
        assert attrs["type"] == "crm.sales.lead.validated.v1"
        assert attrs["source"] == SOURCE
        assert attrs["specversion"] == "1.0"
        assert attrs["datacontenttype"] == "application/avro"
        assert attrs["time"] == raw_event.get_attributes()["time"]
        assert headers_of(msg)["hub_policy_version"] == policy_version
        data = event.get_data()
        assert isinstance(data, dict)
        decoded_clean[lead_id] = data
    assert decoded_clean["L-1"] == {
        "lead_id": "L-1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone_e164": "+14155550123",
        "phone_display": "+1-415-555-0123",
        "company": "Analytical Engines",
        "job_title": None,
        "country": "US",
        "lead_source": None,
        "lead_status": None,
        "created_on": date(2024, 3, 5),
        "owner": None,
        "notes": None,
    }
    assert decoded_clean["L-2"]["phone_display"] == "+1-212-555-0199"
    assert decoded_clean["L-2"]["created_on"] == date(2024, 3, 6)

    quarantined = read_topic(kafka_bootstrap, topics.quarantine, expect=1)
    assert len(quarantined) == 1
    event, _, _ = downstream_read(registry_url, quarantined[0])
    attrs = event.get_attributes()
    record = event.get_data()
    assert isinstance(record, dict)
    assert attrs["type"] == "crm.quarantine.record.v1"
    assert attrs["subject"] == "L-3"
    assert attrs["id"] == record["quarantine_id"]
    assert record["stage"] == "validation"
    assert record["source_event_id"] == raw_events["L-3"][1]
    assert record["policy_version"] == policy_version
    assert [r["rule_id"] for r in record["reasons"]] == ["sales.email.format"]
