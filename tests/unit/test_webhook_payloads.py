"""What the hubspot and zendesk plugins read from a delivery's body, table-driven: the
documented payloads become records that fit their Avro schema (personal values in the
fields the schema declares ``pii``), events they do not map become quarantine records
with a reason, and bodies that are not the documented JSON are refused (``BadPayload``)
with a reason that names the field, never a value."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from pydantic import SecretStr

from connectors.hubspot.connector import HubSpotConfig, HubSpotConnector
from connectors.hubspot.webhook_sender import contact_events
from connectors.hubspot.webhooks import read_delivery as read_hubspot
from connectors.hubspot.webhooks import webhook_stream as hubspot_stream
from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.policy import load_case_status_policy
from connectors.zendesk.webhook_sender import ticket_event
from connectors.zendesk.webhooks import read_delivery as read_zendesk
from connectors.zendesk.webhooks import webhook_stream as zendesk_stream
from hub.sdk.streams import SourceRecord
from hub.settings import REPO_ROOT
from hub.webhooks.base import BadPayload
from hub.webhooks.signatures import HUBSPOT_V3, ZENDESK

HS_CONFIG = HubSpotConfig(access_token=SecretStr("t"), webhook_secret=SecretStr("s"))
ZD_CONFIG = ZendeskConfig(
    subdomain="acme", oauth_token=SecretStr("t"), webhook_secret=SecretStr("s")
)
POLICY = load_case_status_policy()
PERSONAL = "ana.okafor@example.com"


def schema(name: str) -> Any:
    return fastavro.parse_schema(json.loads((REPO_ROOT / "schemas" / f"{name}.avsc").read_text()))


def fits(record: SourceRecord, name: str) -> None:
    assert record.value is not None
    fastavro.schemaless_writer(io.BytesIO(), schema(name), record.value)


def hubspot(events: Any) -> list[SourceRecord]:
    return read_hubspot(json.dumps(events).encode(), hubspot_stream(HS_CONFIG))


def zendesk(event: Any) -> list[SourceRecord]:
    return read_zendesk(json.dumps(event).encode(), zendesk_stream(ZD_CONFIG), POLICY)


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": 100,
        "subscriptionId": 1234,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1_764_503_990_000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 123,
        "propertyName": "lifecyclestage",
        "propertyValue": "lead",
        "changeSource": "CRM_UI",
        "sourceId": "userId:45678",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# -- the plugins offer webhooks only when configured -----------------------------------------


def test_the_plugins_offer_webhooks_only_with_a_secret() -> None:
    hs = HubSpotConnector.webhooks(HS_CONFIG)
    zd = ZendeskConnector.webhooks(ZD_CONFIG)
    assert hs is not None
    assert hs.scheme is HUBSPOT_V3
    assert zd is not None
    assert zd.scheme is ZENDESK
    assert hs.streams[0].topic == "crm.raw.marketing.contact-webhooks.v1"
    assert zd.streams[0].topic == "crm.raw.service.ticket-webhooks.v1"
    assert HubSpotConnector.webhooks(HS_CONFIG.model_copy(update={"webhook_secret": None})) is None
    assert ZendeskConnector.webhooks(ZD_CONFIG.model_copy(update={"webhook_secret": None})) is None


# -- HubSpot ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"propertyName": "lifecyclestage", "propertyValue": "lead"}, "property_value"),
        ({"propertyName": "email", "propertyValue": PERSONAL}, "email_value"),
        ({"propertyName": "work_email", "propertyValue": PERSONAL}, "email_value"),
        ({"propertyName": "phone", "propertyValue": "+1-555-201-3344"}, "phone_value"),
        ({"propertyName": "mobilephone", "propertyValue": "+1-555-201-3344"}, "phone_value"),
        ({"propertyName": "firstname", "propertyValue": "Ana"}, "name_value"),
        ({"propertyName": "lastname", "propertyValue": "Okafor"}, "name_value"),
        ({"propertyName": "my_custom_note", "propertyValue": "x"}, "property_value"),
    ],
)
def test_a_property_value_goes_to_the_field_of_its_kind(
    changes: dict[str, Any], field: str
) -> None:
    (rec,) = hubspot([event(**changes)])
    assert rec.value is not None
    assert rec.value[field] == changes["propertyValue"]
    others = {"property_value", "email_value", "phone_value", "name_value"} - {field}
    assert all(rec.value[o] is None for o in others)
    fits(rec, "marketing/ContactWebhookEvent")


def test_declared_pii_fields_are_the_personal_ones() -> None:
    fields = {
        f["name"]: f.get("pii")
        for f in json.loads((REPO_ROOT / "schemas/marketing/ContactWebhookEvent.avsc").read_text())[
            "fields"
        ]
    }
    assert fields["email_value"] == "EMAIL_ADDRESS"
    assert fields["phone_value"] == "PHONE_NUMBER"
    assert fields["name_value"] == "PERSON"
    assert fields["property_value"] is None  # scanned by the DLP stage instead


def test_a_redelivery_is_the_same_record() -> None:
    (first,) = hubspot([event(attemptNumber=0)])
    (again,) = hubspot([event(attemptNumber=3)])
    assert first.record_id == again.record_id
    assert first.key == again.key == "123"
    assert again.value is not None
    assert again.value["attempt_number"] == 3


def test_a_realistic_batch_reads_whole_and_fits_the_schema() -> None:
    events = contact_events(100, seed=4)
    records = hubspot(events)
    assert len(records) == 100
    assert len({r.record_id for r in records}) == 100
    for rec in records:
        assert not rec.reasons
        fits(rec, "marketing/ContactWebhookEvent")


@pytest.mark.parametrize(
    "item",
    [
        event(subscriptionType="company.creation"),
        event(subscriptionType="deal.propertyChange"),
        {**event(subscriptionType="contact.associationChange", objectId=None), "fromObjectId": 1},
        event(subscriptionType="object.creation", objectTypeId="0-2"),
    ],
    ids=["company", "deal", "association", "object of another type"],
)
def test_an_event_the_plugin_does_not_map_goes_to_quarantine_with_a_reason(
    item: dict[str, Any],
) -> None:
    good, bad = hubspot([event(), item])
    assert not good.reasons
    assert bad.value is None
    assert [r.rule_id for r in bad.reasons] == ["hubspot.webhook.unsupported_type"]
    assert bad.raw is not None


def test_object_events_of_contacts_are_mapped() -> None:
    (rec,) = hubspot([event(subscriptionType="object.propertyChange", objectTypeId="0-1")])
    assert not rec.reasons


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [
        (b"not json", "hubspot.webhook.json", None),
        (b'{"eventId": 1}', "hubspot.webhook.shape", None),
        (b'["x"]', "hubspot.webhook.shape", None),
        (json.dumps([event(eventId=None)]).encode(), "hubspot.webhook.field", "eventId"),
        (json.dumps([event(eventId="100")]).encode(), "hubspot.webhook.field", "eventId"),
        (json.dumps([event(portalId=True)]).encode(), "hubspot.webhook.field", "portalId"),
        (json.dumps([event(occurredAt=None)]).encode(), "hubspot.webhook.field", "occurredAt"),
        (
            json.dumps([event(subscriptionType=7)]).encode(),
            "hubspot.webhook.field",
            "subscriptionType",
        ),
        (json.dumps([event(objectId=None)]).encode(), "hubspot.webhook.field", "objectId"),
        (
            json.dumps([event(propertyValue={"v": PERSONAL})]).encode(),
            "hubspot.webhook.field",
            "propertyValue",
        ),
    ],
)
def test_a_body_that_is_not_the_documented_json_is_refused(
    body: bytes, rule: str, field: str | None
) -> None:
    with pytest.raises(BadPayload) as caught:
        read_hubspot(body, hubspot_stream(HS_CONFIG))
    assert caught.value.rule_id == rule
    assert caught.value.field == field
    assert PERSONAL not in str(caught.value)


# -- Zendesk ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "current", "case_status"),
    [
        ("status_changed", "OPEN", "In Progress"),
        ("status_changed", "PENDING", "Waiting on Customer"),
        ("status_changed", "SOLVED", "Resolved"),
        ("created", "NEW", None),
        ("tags_changed", "OPEN", None),
        ("comment_added", "OPEN", None),
        ("priority_changed", "OPEN", None),
    ],
)
def test_ticket_events_read_and_fit_the_schema(
    kind: str, current: str, case_status: str | None
) -> None:
    (rec,) = zendesk(ticket_event(5158, kind=kind, current=current, event_id="e-1"))
    assert not rec.reasons
    assert rec.value is not None
    assert rec.value["ticket_id"] == 5158
    assert rec.key == "5158"
    assert rec.record_id == "ticket-webhooks:12514403:e-1"
    if case_status is not None:
        assert rec.value["case_status"] == case_status
        assert rec.value["status"] == current.lower()
        assert (rec.value["previous"], rec.value["current"]) == ("NEW", current)
    assert rec.value["case_status"] in POLICY.case_statuses
    assert rec.value["case_status_policy"] == POLICY.version
    if kind in ("tags_changed", "comment_added"):
        assert rec.value["change"] is not None
    fits(rec, "service/TicketWebhookEvent")


def test_an_unmapped_status_goes_to_quarantine_never_coerced() -> None:
    body = ticket_event(7, kind="status_changed", current="ARCHIVED_BY_BOT")
    (rec,) = zendesk(body)
    assert rec.value is None
    assert [r.rule_id for r in rec.reasons] == ["service.case_status.unmapped"]
    assert "ARCHIVED" not in rec.reasons[0].message.upper()


def test_an_event_about_something_else_goes_to_quarantine() -> None:
    body = {**ticket_event(7), "type": "zen:event-type:user.created", "subject": "zen:user:1"}
    (rec,) = zendesk(body)
    assert [r.rule_id for r in rec.reasons] == ["zendesk.webhook.unsupported_type"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("id"), "id"),
        (lambda e: e.update(account_id="acme"), "account_id"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e.update(type="ticket.created"), "type"),
        (lambda e: e.update(detail=[]), "detail"),
        (lambda e: e["detail"].update(id="not-a-number"), "detail.id"),
        (lambda e: e["detail"].update(requester_id={"email": PERSONAL}), "detail.requester_id"),
        (lambda e: e["detail"].update(tags="vip"), "detail.tags"),
    ],
)
def test_a_zendesk_body_that_is_not_the_documented_json_is_refused(mutate: Any, field: str) -> None:
    body = ticket_event(5158)
    mutate(body)
    with pytest.raises(BadPayload) as caught:
        zendesk(body)
    assert caught.value.field == field
    assert PERSONAL not in str(caught.value)
    assert "not-a-number" not in str(caught.value)


@pytest.mark.parametrize("body", [b"", b"[]", b"nope", b"null"])
def test_a_zendesk_body_that_is_not_an_object_is_refused(body: bytes) -> None:
    with pytest.raises(BadPayload):
        read_zendesk(body, zendesk_stream(ZD_CONFIG), POLICY)
