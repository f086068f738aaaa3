"""The embedded schema registry against a real broker, served by a real uvicorn server and
driven by the real Confluent client, serializer and deserializer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from hub.registry.api import MEDIA_TYPE, create_registry_app
from hub.registry.store import SchemaStore
from hub.serving import serve

pytestmark = pytest.mark.integration

LEAD_AVSC = Path(__file__).resolve().parents[2] / "schemas" / "sales" / "Lead.avsc"
SUBJECT = "crm.clean.sales.leads.v1-value"


def lead_schema(*extra_fields: dict[str, Any]) -> str:
    data = json.loads(LEAD_AVSC.read_text(encoding="utf-8"))
    data["fields"].extend(extra_fields)
    return json.dumps(data)


REGION_OPTIONAL = {"name": "region", "type": ["null", "string"], "default": None}
SEGMENT_REQUIRED = {"name": "segment", "type": "string"}


@pytest.fixture
def topic(unique: str) -> str:
    return f"_schemas-test-{unique}"


@pytest.fixture
def store(kafka_bootstrap: str, topic: str) -> Iterator[SchemaStore]:
    schema_store = SchemaStore(kafka_bootstrap, topic)
    schema_store.start()
    yield schema_store
    schema_store.close()


@pytest.fixture
def registry_url(store: SchemaStore) -> Iterator[str]:
    with serve(create_registry_app(store)) as url:
        yield url


@pytest.fixture
def client(registry_url: str) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": registry_url}) as sr_client:
        yield sr_client


@contextmanager
def fresh_client(url: str) -> Iterator[SchemaRegistryClient]:
    """A client with empty caches (the client caches ids, schemas and "latest")."""
    with SchemaRegistryClient({"url": url}) as sr_client:
        yield sr_client


def latest_version(url: str, subject: str) -> int:
    with fresh_client(url) as sr_client:
        version = sr_client.get_latest_version(subject).version
    assert version is not None
    return version


def test_register_get_evolve_refuse_and_relax(
    client: SchemaRegistryClient, registry_url: str
) -> None:
    lead = LEAD_AVSC.read_text(encoding="utf-8")
    first_id = client.register_schema(SUBJECT, Schema(lead, "AVRO"))

    fetched = client.get_schema(first_id)
    assert json.loads(fetched.schema_str or "") == json.loads(lead)
    latest = client.get_latest_version(SUBJECT)
    assert (latest.version, latest.schema_id, latest.subject) == (1, first_id, SUBJECT)

    with fresh_client(registry_url) as fresh:
        # The same schema again, uncached and re-indented: the same id, no new version.
        again = json.dumps(json.loads(lead), indent=1)
        assert fresh.register_schema(SUBJECT, Schema(again, "AVRO")) == first_id
        assert fresh.get_versions(SUBJECT) == [1]

    # A compatible evolution (optional field with a default) is version 2 with a new id.
    second_id = client.register_schema(SUBJECT, Schema(lead_schema(REGION_OPTIONAL), "AVRO"))
    assert second_id != first_id
    assert latest_version(registry_url, SUBJECT) == 2
    assert client.get_version(SUBJECT, 1).schema_id == first_id

    # A required field without a default cannot read old data: refused with the reason.
    breaking = Schema(lead_schema(REGION_OPTIONAL, SEGMENT_REQUIRED), "AVRO")
    assert client.test_compatibility(SUBJECT, breaking) is False
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(SUBJECT, breaking)
    assert info.value.http_status_code == 409
    assert info.value.error_code == 409
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in info.value.error_message
    assert "'segment'" in info.value.error_message
    assert "version 2" in info.value.error_message
    assert client.get_versions(SUBJECT) == [1, 2]

    # With the subject's compatibility set to NONE it is accepted as version 3.
    client.set_compatibility(SUBJECT, "NONE")
    assert client.get_compatibility(SUBJECT) == "NONE"
    assert client.get_compatibility() == "BACKWARD"
    third_id = client.register_schema(SUBJECT, breaking)
    assert latest_version(registry_url, SUBJECT) == 3
    assert len({first_id, second_id, third_id}) == 3

    # The same schema under a second subject reuses the global id.
    other = "crm.raw.sales.leads.v1-value"
    with fresh_client(registry_url) as fresh:
        assert fresh.register_schema(other, Schema(lead, "AVRO")) == first_id
        looked_up = fresh.lookup_schema(other, Schema(lead, "AVRO"))
    assert (looked_up.schema_id, looked_up.version) == (first_id, 1)
    assert sorted(client.get_subjects()) == sorted([SUBJECT, other])
    usages = {(v.subject, v.version) for v in client.get_schema_versions(first_id)}
    assert usages == {(SUBJECT, 1), (other, 1)}


def test_state_comes_back_from_kafka(kafka_bootstrap: str, topic: str) -> None:
    store = SchemaStore(kafka_bootstrap, topic)
    store.start()
    lead = LEAD_AVSC.read_text(encoding="utf-8")
    v1 = store.register(SUBJECT, lead)
    v2 = store.register(SUBJECT, lead_schema(REGION_OPTIONAL))
    other = store.register("other-value", lead_schema(REGION_OPTIONAL))
    gone = store.register("gone-value", lead_schema(SEGMENT_REQUIRED))
    store.set_compatibility("FULL", SUBJECT)
    store.set_compatibility("FORWARD")
    assert store.delete_subject("gone-value") == [1]
    before = {
        s: [store.get_version(s, v, deleted=True) for v in store.versions(s, deleted=True)]
        for s in store.subjects(deleted=True)
    }
    store.close()

    restarted = SchemaStore(kafka_bootstrap, topic)
    restarted.start()
    try:
        after = {
            s: [
                restarted.get_version(s, v, deleted=True)
                for v in restarted.versions(s, deleted=True)
            ]
            for s in restarted.subjects(deleted=True)
        }
        assert after == before
        assert restarted.subjects() == sorted([SUBJECT, "other-value"])
        assert restarted.versions(SUBJECT) == [1, 2]
        assert restarted.get_version(SUBJECT, None).schema_id == v2.schema_id
        assert other.schema_id == v2.schema_id
        assert restarted.schema_by_id(gone.schema_id) == store.schema_by_id(gone.schema_id)
        assert restarted.compatibility(SUBJECT).value == "FULL"
        assert restarted.compatibility("other-value").value == "FORWARD"
        # identity and the id counter come back too: same schema -> same id, new -> max + 1
        assert restarted.register(SUBJECT, lead).schema_id == v1.schema_id
        newest = restarted.register(
            "fresh-value", lead_schema(REGION_OPTIONAL, REGION_OPTIONAL | {"name": "zone"})
        )
        assert newest.schema_id == max(v1.schema_id, v2.schema_id, gone.schema_id) + 1

        with serve(create_registry_app(restarted)) as url, fresh_client(url) as client:
            assert client.get_latest_version(SUBJECT).schema_id == v2.schema_id
            assert json.loads(client.get_schema(v1.schema_id).schema_str or "") == json.loads(lead)
            assert client.get_compatibility(SUBJECT) == "FULL"
    finally:
        restarted.close()

    # The log holds Confluent's record layout.
    records = read_topic(kafka_bootstrap, topic)
    assert (
        {"keytype": "SCHEMA", "subject": SUBJECT, "version": 1, "magic": 1},
        {
            "subject": SUBJECT,
            "version": 1,
            "id": v1.schema_id,
            "schemaType": "AVRO",
            "schema": v1.schema,
            "deleted": False,
        },
    ) in records
    assert (
        {"keytype": "CONFIG", "subject": None, "magic": 0},
        {"compatibilityLevel": "FORWARD"},
    ) in records
    assert (
        {"keytype": "CONFIG", "subject": SUBJECT, "magic": 0},
        {"compatibilityLevel": "FULL"},
    ) in records


def read_topic(bootstrap: str, topic: str) -> list[tuple[Any, Any]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False}
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + 20
        while len(records) < high and time.monotonic() < deadline:
            for message in consumer.consume(high - len(records), timeout=1):
                assert message.error() is None, message.error()
                value = message.value()
                records.append(
                    (json.loads(message.key() or b""), json.loads(value) if value else None)
                )
        return records
    finally:
        consumer.close()


def test_avro_serializer_round_trip(client: SchemaRegistryClient, registry_url: str) -> None:
    topic = "crm.clean.sales.leads.v1"
    serializer = AvroSerializer(
        client, LEAD_AVSC.read_text(encoding="utf-8"), conf={"auto.register.schemas": True}
    )
    deserializer = AvroDeserializer(client)
    lead = {
        "lead_id": "L-1",
        "first_name": "Ada",
        "last_name": None,
        "email": "ada@example.com",
        "phone_e164": None,
        "phone_display": None,
        "company": "Analytical Engines",
        "job_title": None,
        "country": "GB",
        "lead_source": "web",
        "lead_status": "new",
        "created_on": None,
        "owner": None,
        "notes": None,
    }
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = serializer(lead, ctx)
    assert data is not None
    registered = client.get_latest_version(f"{topic}-value")
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert deserializer(data, ctx) == lead
    # a fresh client, so the writer schema really is fetched by id over HTTP
    with fresh_client(registry_url) as fresh:
        assert AvroDeserializer(fresh)(data, ctx) == lead


def test_http_shapes_and_error_codes(registry_url: str) -> None:
    lead = LEAD_AVSC.read_text(encoding="utf-8")
    headers = {"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE}
    with httpx.Client(base_url=registry_url, headers=headers, timeout=10) as http:

        def error(response: httpx.Response, status: int, code: int) -> str:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == MEDIA_TYPE
            body = response.json()
            assert body["error_code"] == code
            return str(body["message"])

        assert http.get("/subjects").json() == []
        assert http.get("/schemas/types").json() == ["AVRO"]
        assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
        error(http.get("/subjects/nope/versions"), 404, 40401)
        error(http.get("/subjects/nope/versions/latest"), 404, 40401)
        error(http.get("/schemas/ids/999"), 404, 40403)

        registered = http.post("/subjects/s-value/versions", json={"schema": lead})
        assert registered.status_code == 200
        assert registered.headers["content-type"] == MEDIA_TYPE
        schema_id = registered.json()["id"]
        assert registered.json() == {"id": schema_id}
        # plain application/json is accepted as well
        plain = http.post(
            "/subjects/s-value/versions",
            content=json.dumps({"schema": lead, "schemaType": "AVRO"}),
            headers={"Content-Type": "application/json"},
        )
        assert plain.json() == {"id": schema_id}

        version = http.get("/subjects/s-value/versions/1").json()
        assert version == {
            "subject": "s-value",
            "id": schema_id,
            "version": 1,
            "schema": http.get(f"/schemas/ids/{schema_id}").json()["schema"],
        }
        assert http.get("/subjects/s-value/versions/-1").json() == version
        assert http.get("/subjects/s-value/versions/1/schema").json() == json.loads(lead)
        assert http.get(f"/schemas/ids/{schema_id}/versions").json() == [
            {"subject": "s-value", "version": 1}
        ]
        assert http.post("/subjects/s-value", json={"schema": lead}).json() == version
        error(
            http.post("/subjects/s-value", json={"schema": lead_schema(REGION_OPTIONAL)}),
            404,
            40403,
        )
        error(http.get("/subjects/s-value/versions/7"), 404, 40402)
        error(http.get("/subjects/s-value/versions/zero"), 422, 42202)

        error(http.post("/subjects/s-value/versions", json={"schema": "{"}), 422, 42201)
        message = error(
            http.post(
                "/subjects/s-value/versions",
                json={"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"},
            ),
            422,
            42201,
        )
        assert "only AVRO" in message
        error(http.put("/config", json={"compatibility": "SIDEWAYS"}), 422, 42203)
        error(http.post("/subjects/s-value/versions", content="{", headers=headers), 400, 400)
        error(
            http.post(
                "/subjects/s-value/versions", content="x", headers={"Content-Type": "text/plain"}
            ),
            415,
            415,
        )

        breaking = {"schema": lead_schema(SEGMENT_REQUIRED)}
        check = http.post(
            "/compatibility/subjects/s-value/versions/latest?verbose=true", json=breaking
        )
        assert check.json()["is_compatible"] is False
        assert any("'segment'" in m for m in check.json()["messages"])
        assert http.post("/compatibility/subjects/s-value/versions/1", json=breaking).json() == {
            "is_compatible": False
        }
        ok = {"schema": lead_schema(REGION_OPTIONAL)}
        assert http.post(
            "/compatibility/subjects/s-value/versions?verbose=true", json=ok
        ).json() == {
            "is_compatible": True,
            "messages": [],
        }
        error(http.post("/subjects/s-value/versions", json=breaking), 409, 409)

        error(http.get("/config/s-value"), 404, 40408)
        assert http.get("/config/s-value?defaultToGlobal=true").json() == {
            "compatibilityLevel": "BACKWARD"
        }
        assert http.put("/config/s-value", json={"compatibility": "none"}).json() == {
            "compatibility": "NONE"
        }
        assert http.get("/config/s-value").json() == {"compatibilityLevel": "NONE"}
        assert http.delete("/config/s-value").json() == {"compatibilityLevel": "NONE"}
        error(http.get("/config/s-value"), 404, 40408)
        assert http.put("/config", json={"compatibility": "FULL"}).json() == {
            "compatibility": "FULL"
        }
        assert http.get("/config").json() == {"compatibilityLevel": "FULL"}

        # soft delete, then permanent
        error(http.delete("/subjects/s-value?permanent=true"), 404, 40405)
        assert http.delete("/subjects/s-value").json() == [1]
        error(http.get("/subjects/s-value/versions"), 404, 40401)
        assert http.get("/subjects").json() == []
        assert http.get("/subjects?deleted=true").json() == ["s-value"]
        assert http.get(f"/schemas/ids/{schema_id}").json()["schema"]
        error(http.delete("/subjects/s-value"), 404, 40404)
        assert http.delete("/subjects/s-value?permanent=true").json() == [1]
        assert http.get("/subjects?deleted=true").json() == []
        error(http.delete("/subjects/s-value"), 404, 40401)
        # a re-registration after a permanent delete starts again at version 1, same id
        again = http.post("/subjects/s-value/versions", json={"schema": lead}).json()
        assert again == {"id": schema_id}
        assert http.get("/subjects/s-value/versions").json() == [1]
