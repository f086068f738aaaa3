"""Signed webhooks through the real API app (``hub.api.create_api``) behind a real uvicorn
server, on the session broker and registry. Connectors are registered through the Connect
API with ``webhook.secret`` as an ``${env:…}`` reference (and an API token whose variable
this process does not have: only the webhook keys must resolve here). The deliveries come
from the simulators' senders, signed as HubSpot and Zendesk sign them.

A second, stand-alone app (webhook router + Connect API + a ConnectState) runs on a broker
of its own, with a 300 ms producer linger: an answer that came before the acknowledgement
would come before the event is on the log, and the read right after the answer would miss
it. Then its broker is stopped: deliveries are answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.hubspot import webhook_sender as hubspot
from connectors.zendesk import webhook_sender as zendesk
from hub import topics
from hub.api import create_api
from hub.broker import EmbeddedBroker
from hub.connect_api import create_connect_app
from hub.connect_state import ConnectState
from hub.dlp.operators import keyring_from_master, unseal
from hub.serde import AvroCodec, load_schema_text
from hub.serving import serve
from hub.settings import REPO_ROOT, Settings, load_settings
from hub.webhooks.receiver import WebhookMiddleware, WebhookService
from tests.integration.conftest import headers_of, read_topic

pytestmark = pytest.mark.integration

HS_SECRET_VAR = f"IT_WEBHOOK_HS_SECRET_{uuid.uuid4().hex[:6].upper()}"
ZD_SECRET_VAR = f"IT_WEBHOOK_ZD_SECRET_{uuid.uuid4().hex[:6].upper()}"
HS_SECRET = "hs-client-secret-" + uuid.uuid4().hex
ZD_SECRET = "zd-signing-secret-" + uuid.uuid4().hex
SCHEMAS = REPO_ROOT / "schemas"


@dataclass
class Hub:
    url: str
    http: httpx.Client
    settings: Settings
    bootstrap: str


@pytest.fixture(scope="module", autouse=True)
def secrets_in_env() -> Iterator[None]:
    """The secrets as the API process's environment holds them (``${env:…}``)."""
    os.environ[HS_SECRET_VAR] = HS_SECRET
    os.environ[ZD_SECRET_VAR] = ZD_SECRET
    try:
        yield
    finally:
        os.environ.pop(HS_SECRET_VAR, None)
        os.environ.pop(ZD_SECRET_VAR, None)


@pytest.fixture(scope="module")
def hub(
    kafka_bootstrap: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        schema_registry_url=registry_url,
        home=tmp_path_factory.mktemp("webhooks-home"),
    )
    with serve(create_api(settings)) as url, httpx.Client(base_url=url, timeout=20) as http:
        yield Hub(url, http, settings, kafka_bootstrap)


def register(http: httpx.Client, name: str, config: dict[str, str]) -> None:
    answer = http.put(f"/connectors/{name}/config", json=config)
    assert answer.status_code in (200, 201), answer.text


def hubspot_config(**extra: str) -> dict[str, str]:
    return {
        "connector.class": "hubspot",
        "access.token": "${env:IT_WEBHOOK_TOKEN_NOT_SET_HERE}",
        "webhook.secret": f"${{env:{HS_SECRET_VAR}}}",
        "topic.template": "it.webhooks.{connector}.{stream}.v1",
        **extra,
    }


def zendesk_config(topic: str) -> dict[str, str]:
    return {
        "connector.class": "zendesk",
        "subdomain": "acme",
        "oauth.token": "${env:IT_WEBHOOK_TOKEN_NOT_SET_HERE}",
        "webhook.secret": f"${{env:{ZD_SECRET_VAR}}}",
        "ticket.webhooks.topic": topic,
    }


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def codec(registry: SchemaRegistryClient, topic: str, schema: str) -> AvroCodec:
    return AvroCodec(registry, topic, load_schema_text(SCHEMAS / f"{schema}.avsc"))


def of_connector(messages: list[Message], name: str) -> list[Message]:
    return [m for m in messages if headers_of(m).get("hub_connector") == name]


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}}")


# -- HubSpot -------------------------------------------------------------------------------


def test_hubspot_good_bad_stale_and_replayed_deliveries(
    hub: Hub, registry: SchemaRegistryClient
) -> None:
    name = unique_name("hs-wh")
    register(hub.http, name, hubspot_config())
    url = f"{hub.url}/webhooks/{name}"
    topic = f"it.webhooks.{name}.contact-webhooks.v1"

    events = hubspot.contact_events(4, seed=1)
    events[1].update(subscriptionType="contact.propertyChange", propertyName="email")
    events[1]["propertyValue"] = "ana.okafor@example.com"
    body = json.dumps(events).encode()
    headers = hubspot.delivery_headers(url, body, HS_SECRET)
    good = hub.http.post(url, content=body, headers=headers)
    assert good.status_code == 200, good.text
    assert good.json() == {"accepted": 4, "quarantined": 0}

    replay = hub.http.post(url, content=body, headers=headers)
    bad = hubspot.send(url, hubspot.contact_events(2, seed=2), HS_SECRET, corrupt=True)
    stale_ms = int((time.time() - 360) * 1000)
    stale = hubspot.send(url, hubspot.contact_events(2, seed=3), HS_SECRET, timestamp_ms=stale_ms)
    wrong_secret = hubspot.send(url, hubspot.contact_events(2, seed=4), "not-the-secret")
    unsigned = hub.http.post(url, content=body, headers={"Content-Type": "application/json"})
    answers = {
        "replay": replay,
        "bad_signature": bad,
        "stale": stale,
        "wrong secret": wrong_secret,
        "unsigned": unsigned,
    }
    for what, answer in answers.items():
        assert answer.status_code == 401, what
    assert [a.json()["error"] for a in answers.values()] == [
        "replay",
        "bad_signature",
        "stale",
        "bad_signature",
        "missing_signature",
    ]

    # Only the good delivery's four events are on the topic: refusals wrote nothing.
    messages = read_topic(hub.bootstrap, topic, expect=4)
    assert len(messages) == 4
    contacts = codec(registry, topic, "marketing/ContactWebhookEvent")
    values = {
        contacts.decode(m.value())["event_id"]: (m, contacts.decode(m.value())) for m in messages
    }
    assert sorted(values) == sorted(e["eventId"] for e in events)
    for event in events:
        msg, value = values[event["eventId"]]
        h = headers_of(msg)
        assert h["ce_specversion"] == "1.0"
        assert h["ce_type"] == "crm.marketing.contact_webhook.received.v1"
        assert h["ce_source"] == f"urn:crm-hub:connector:{name}"
        assert h["content-type"] == "application/avro"
        assert h["hub_connector"] == name
        assert h["hub_department"] == "marketing"
        assert msg.key() == str(event["objectId"]).encode() == h["ce_subject"].encode()
        assert value["contact_id"] == event["objectId"]
        assert value["subscription_type"] == event["subscriptionType"]
    assert values[events[1]["eventId"]][1]["email_value"] == "ana.okafor@example.com"
    assert values[events[1]["eventId"]][1]["property_value"] is None

    # A redelivery (HubSpot's retry: new timestamp, attemptNumber 1) is the same event id.
    for e in events:
        e["attemptNumber"] = 1
    again = hubspot.send(url, events, HS_SECRET)
    assert again.status_code == 200
    messages = read_topic(hub.bootstrap, topic, expect=8)
    ids: dict[int, set[str]] = {}
    for m in messages:
        ids.setdefault(contacts.decode(m.value())["event_id"], set()).add(headers_of(m)["ce_id"])
    assert all(len(v) == 1 for v in ids.values())

    scraped = hub.http.get("/metrics").text
    for reason, count in (("replay", 1), ("bad_signature", 2), ("stale", 1)):
        assert (
            metric(scraped, "hub_webhook_rejections_total", connector=name, reason=reason) == count
        )
    assert metric(scraped, "hub_webhook_requests_total", connector=name, outcome="accepted") == 2
    assert metric(scraped, "hub_webhook_events_total", connector=name, outcome="published") == 8
    assert HS_SECRET not in scraped
    assert headers["X-HubSpot-Signature-v3"] not in scraped


def test_a_malformed_body_is_400_and_goes_to_quarantine_sealed(
    hub: Hub, registry: SchemaRegistryClient
) -> None:
    name = unique_name("hs-wh")
    register(hub.http, name, hubspot_config())
    url = f"{hub.url}/webhooks/{name}"
    body = b'{"eventId": 1, "note": "ana.okafor@example.com"}'  # an object, not an array
    answer = hub.http.post(
        url, content=body, headers=hubspot.delivery_headers(url, body, HS_SECRET)
    )
    assert answer.status_code == 400
    assert answer.json()["rule"] == "hubspot.webhook.shape"
    assert "ana.okafor" not in answer.text

    # An event the connector does not map (a company) is quarantined; the rest published.
    events = hubspot.contact_events(2, seed=9)
    events.append({**events[0], "eventId": 7, "subscriptionType": "company.creation"})
    mixed = hubspot.send(url, events, HS_SECRET)
    assert mixed.json() == {"accepted": 2, "quarantined": 1}

    quarantined = of_connector(read_topic(hub.bootstrap, topics.QUARANTINE, idle=1.0), name)
    assert len(quarantined) == 2
    records = codec(registry, topics.QUARANTINE, "common/QuarantineRecord")
    keys = keyring_from_master(hub.settings.dlp_master_key())
    by_rule = {}
    for msg in quarantined:
        record = records.decode(msg.value())
        assert record["stage"] == "webhook"
        assert record["connector"] == name
        assert record["department"] == "marketing"
        assert b"ana.okafor" not in record["payload"]  # sealed at rest
        aad = headers_of(msg)["hub_trace_id"].encode()
        by_rule[record["reasons"][0]["rule_id"]] = (
            record,
            unseal(keys, record["payload"], aad=aad),
        )
    whole, plain = by_rule["hubspot.webhook.shape"]
    assert plain == body
    assert whole["payload_format"] == "raw+sealed:default"
    item, plain_item = by_rule["hubspot.webhook.unsupported_type"]
    assert json.loads(plain_item)["subscriptionType"] == "company.creation"
    assert item["payload_format"] == "json+sealed:default"


def test_unknown_or_webhookless_connectors_are_404_and_paused_ones_503(hub: Hub) -> None:
    assert hub.http.post("/webhooks/no-such-connector", content=b"[]").status_code == 404
    name = unique_name("hs-nowh")
    config = hubspot_config()
    del config["webhook.secret"]
    register(hub.http, name, config)
    assert hub.http.post(f"/webhooks/{name}", content=b"[]").status_code == 404
    assert hub.http.get(f"/webhooks/{name}").status_code == 405
    assert hub.http.post(f"/webhooks/{name}/x", content=b"[]").status_code == 404

    paused = unique_name("hs-wh")
    register(hub.http, paused, hubspot_config())
    assert hub.http.put(f"/connectors/{paused}/pause").status_code == 202
    url = f"{hub.url}/webhooks/{paused}"
    answer = hubspot.send(url, hubspot.contact_events(1, seed=5), HS_SECRET)
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0


# -- Zendesk -------------------------------------------------------------------------------


def test_zendesk_deliveries(hub: Hub, registry: SchemaRegistryClient) -> None:
    name = unique_name("zd-wh")
    topic = f"it.webhooks.{name}.tickets.v1"
    register(hub.http, name, zendesk_config(topic))
    url = f"{hub.url}/webhooks/{name}"
    event = zendesk.ticket_event(5158, kind="status_changed", previous="NEW", current="SOLVED")
    body = json.dumps(event).encode()
    headers = zendesk.delivery_headers(body, ZD_SECRET)
    good = hub.http.post(url, content=body, headers=headers)
    assert good.status_code == 200, good.text
    assert hub.http.post(url, content=body, headers=headers).json() == {"error": "replay"}
    bad = zendesk.send(url, zendesk.ticket_event(1), ZD_SECRET, corrupt=True)
    stale = zendesk.send(url, zendesk.ticket_event(2), ZD_SECRET, timestamp=time.time() - 400)
    assert (bad.status_code, bad.json()["error"]) == (401, "bad_signature")
    assert (stale.status_code, stale.json()["error"]) == (401, "stale")
    unmapped = zendesk.send(url, zendesk.ticket_event(3, current="ARCHIVED"), ZD_SECRET)
    assert unmapped.json() == {"accepted": 0, "quarantined": 1}

    (msg,) = read_topic(hub.bootstrap, topic, expect=1)
    value = codec(registry, topic, "service/TicketWebhookEvent").decode(msg.value())
    assert value["ticket_id"] == 5158
    assert value["status"] == "solved"
    assert value["case_status"] == "Resolved"
    assert msg.key() == b"5158"
    h = headers_of(msg)
    assert h["ce_type"] == "crm.service.ticket_webhook.received.v1"
    assert h["hub_department"] == "service"
    quarantined = of_connector(read_topic(hub.bootstrap, topics.QUARANTINE, idle=0.5), name)
    reasons = [
        codec(registry, topics.QUARANTINE, "common/QuarantineRecord").decode(m.value())["reasons"]
        for m in quarantined
    ]
    assert [r[0]["rule_id"] for r in reasons] == ["service.case_status.unmapped"]


# -- acknowledgement before the answer; broker away ------------------------------------------


@contextmanager
def standalone_app(
    bootstrap: str, registry_url: str, home: Path
) -> Iterator[tuple[str, ConnectState]]:
    settings = load_settings(kafka_bootstrap=bootstrap, schema_registry_url=registry_url, home=home)
    state = ConnectState(bootstrap).start()
    service = WebhookService.from_settings(settings, state, delivery_timeout=2.0, linger_ms=300)
    service.start()
    app = create_connect_app(state)
    app.add_middleware(WebhookMiddleware)
    app.state.webhooks = service
    try:
        with serve(app) as url:
            yield url, state
    finally:
        service.close()
        state.close()


def _tail(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
    consumer.consume(100, 0.5)  # settle the assignment at the end
    return consumer


def test_the_answer_comes_after_the_ack_and_a_dead_broker_is_503(
    registry_url: str, tmp_path: Path
) -> None:
    with (
        EmbeddedBroker() as broker,
        standalone_app(broker.bootstrap, registry_url, tmp_path) as (url, _state),
        httpx.Client(base_url=url, timeout=20) as http,
    ):
        name = unique_name("hs-ack")
        register(http, name, hubspot_config())
        target = f"{url}/webhooks/{name}"
        topic = f"it.webhooks.{name}.contact-webhooks.v1"
        warm = hubspot.send(target, hubspot.contact_events(1, seed=20), HS_SECRET)
        assert warm.status_code == 200  # the endpoint is built, its topic exists
        consumer = _tail(broker.bootstrap, topic)
        try:
            started = time.monotonic()
            answer = hubspot.send(target, hubspot.contact_events(3, seed=21), HS_SECRET)
            answered = time.monotonic()
            assert answer.status_code == 200
            assert answered - started >= 0.3  # it waited out the linger and the ack
            got: list[Message] = []
            while len(got) < 3 and time.monotonic() - answered < 0.25:
                got += [m for m in consumer.consume(10, 0.02) if m.error() is None]
            assert len(got) == 3, "the events were not on the log when the 2xx came"
        finally:
            consumer.close()

        broker.stop()
        started = time.monotonic()
        down = hubspot.send(target, hubspot.contact_events(2, seed=22), HS_SECRET)
        assert down.status_code == 503
        assert down.json()["error"] == "unavailable"
        assert int(down.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 6
