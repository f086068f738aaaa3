"""HubSpot's webhooks for the ``hubspot`` connector: contact events from the Webhooks API,
signed with the app's client secret (v3 signature, checked by the hub).

A delivery is a JSON array of events (HubSpot batches up to 100)::

    [{"eventId": 100, "subscriptionId": 1234, "portalId": 62515, "appId": 54321,
      "occurredAt": 1711234567890, "subscriptionType": "contact.propertyChange",
      "attemptNumber": 0, "objectId": 123, "propertyName": "lifecyclestage",
      "propertyValue": "lead", "changeSource": "CRM_UI", "sourceId": "userId:45678"}]

Each contact event becomes one ``ContactWebhookEvent`` on ``crm.raw.marketing.
contact-webhooks.v1`` (the connector's topic template with the stream
``contact-webhooks``), keyed by the contact id. Its record id is
``contact-webhooks:<portalId>:<subscriptionId>:<eventId>:<objectId>`` — HubSpot does not
promise that ``eventId`` alone is unique — and never includes ``attemptNumber``, so a
redelivery is the same event. An event of another object (a company, a deal) or an
association change is well-formed but not mapped here: it goes to quarantine with its
reason and the rest of the batch is published. A body that is not such an array, or an
item missing a documented field, is refused whole (``BadPayload``: 400 and quarantine).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.quarantine import QuarantineReason, json_payload
from hub.sdk.streams import SourceRecord, Stream
from hub.webhooks.base import BadPayload, WebhookSpec
from hub.webhooks.signatures import HUBSPOT_V3

if TYPE_CHECKING:
    from connectors.hubspot.connector import HubSpotConfig

__all__ = ["WEBHOOK_STREAM", "read_delivery", "webhook_spec", "webhook_stream"]

WEBHOOK_STREAM = "contact-webhooks"
SCHEMA = "marketing/ContactWebhookEvent"
CONTACT_OBJECT_TYPE = "0-1"  # objectTypeId of contacts in object.* subscriptions

CONTACT_TYPES = frozenset(
    {
        "contact.creation",
        "contact.propertyChange",
        "contact.deletion",
        "contact.privacyDeletion",
        "contact.restore",
        "contact.merge",
    }
)
OBJECT_TYPES = frozenset(
    {
        "object.creation",
        "object.propertyChange",
        "object.deletion",
        "object.privacyDeletion",
        "object.restore",
        "object.merge",
    }
)
# Properties whose values are personal, by the field (and so the entity) they go to.
PERSONAL_PROPERTIES = {
    "email": "email_value",
    "hs_additional_emails": "email_value",
    "work_email": "email_value",
    "phone": "phone_value",
    "mobilephone": "phone_value",
    "hs_whatsapp_phone_number": "phone_value",
    "firstname": "name_value",
    "lastname": "name_value",
}
_TYPE_NAME = re.compile(r"^[a-z][a-zA-Z_]*\.[a-zA-Z_]+$")


def webhook_stream(config: HubSpotConfig) -> Stream:
    return Stream(
        name=WEBHOOK_STREAM,
        topic=config.topic_template.format(
            department=config.department, stream=WEBHOOK_STREAM, connector=config.name
        ),
        event_type=f"crm.{config.department}.contact_webhook.received.v1",
        schema=SCHEMA,
        primary_key=("contact_id",),
        replication_key=None,
        department=config.department,
    )


def webhook_spec(config: HubSpotConfig) -> WebhookSpec | None:
    """The connector's webhook endpoint; None without ``webhook.secret``."""
    if config.webhook_secret is None:
        return None
    stream = webhook_stream(config)
    return WebhookSpec(
        scheme=HUBSPOT_V3,
        secret=config.webhook_secret,
        streams=(stream,),
        parse=lambda body: read_delivery(body, stream),
        department=config.department,
        signed_url=config.webhook_url,
    )


def _whole(item: dict[str, Any], key: str, position: int, *, required: bool = True) -> int | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadPayload(
            "hubspot.webhook.field",
            f"event {position}: {key} is missing or not a whole number",
            field=key,
        )
    return value


def _text(item: dict[str, Any], key: str, position: int) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise BadPayload(
        "hubspot.webhook.field", f"event {position}: {key} is not a single value", field=key
    )


def _ids(item: dict[str, Any], key: str, position: int) -> list[int]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise BadPayload(
            "hubspot.webhook.field",
            f"event {position}: {key} is not a list of whole numbers",
            field=key,
        )
    return list(value)


def _is_contact_event(item: dict[str, Any], subscription_type: str) -> bool:
    if subscription_type in CONTACT_TYPES:
        return True
    return subscription_type in OBJECT_TYPES and item.get("objectTypeId") == CONTACT_OBJECT_TYPE


def read_delivery(body: bytes, stream: Stream) -> list[SourceRecord]:
    """The records of one delivery; ``BadPayload`` when it is not HubSpot's documented
    JSON (the reason names the item's position and the field, never a value)."""
    try:
        items = json.loads(body)
    except ValueError:
        raise BadPayload("hubspot.webhook.json", "the body is not JSON") from None
    if not isinstance(items, list):
        raise BadPayload("hubspot.webhook.shape", "the body is not a JSON array of events")
    records: list[SourceRecord] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPayload("hubspot.webhook.shape", f"event {position} is not a JSON object")
        records.append(_read_event(item, position, stream))
    return records


def _read_event(item: dict[str, Any], position: int, stream: Stream) -> SourceRecord:
    event_id = _whole(item, "eventId", position)
    subscription_id = _whole(item, "subscriptionId", position)
    portal_id = _whole(item, "portalId", position)
    occurred_at = _whole(item, "occurredAt", position)
    subscription_type = item.get("subscriptionType")
    if not isinstance(subscription_type, str) or not subscription_type:
        raise BadPayload(
            "hubspot.webhook.field",
            f"event {position}: subscriptionType is missing or not text",
            field="subscriptionType",
        )
    assert occurred_at is not None
    try:
        when = datetime.fromtimestamp(occurred_at / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadPayload(
            "hubspot.webhook.field",
            f"event {position}: occurredAt is not a time in milliseconds",
            field="occurredAt",
        ) from None
    object_id = item.get("objectId")
    record_id = f"{WEBHOOK_STREAM}:{portal_id}:{subscription_id}:{event_id}:{object_id}"
    if not _is_contact_event(item, subscription_type):
        shown = subscription_type if _TYPE_NAME.match(subscription_type) else "(unreadable)"
        return SourceRecord(
            record_id=record_id,
            stream=stream,
            reasons=(
                QuarantineReason(
                    "hubspot.webhook.unsupported_type",
                    "subscriptionType",
                    f"event {position}: subscription type {shown} is not a contact event "
                    "this connector maps",
                ),
            ),
            raw=json_payload(item),
            event_time=when,
            error_class="SkippableError",
        )
    contact_id = _whole(item, "objectId", position)
    property_name = _text(item, "propertyName", position)
    value: dict[str, Any] = {
        "event_id": event_id,
        "subscription_id": subscription_id,
        "portal_id": portal_id,
        "app_id": _whole(item, "appId", position, required=False),
        "occurred_at": when,
        "subscription_type": subscription_type,
        "attempt_number": _whole(item, "attemptNumber", position, required=False) or 0,
        "contact_id": contact_id,
        "property_name": property_name,
        "property_value": None,
        "email_value": None,
        "phone_value": None,
        "name_value": None,
        "change_source": _text(item, "changeSource", position),
        "source_id": _text(item, "sourceId", position),
        "change_flag": _text(item, "changeFlag", position),
        "primary_contact_id": _whole(item, "primaryObjectId", position, required=False),
        "merged_contact_ids": _ids(item, "mergedObjectIds", position),
    }
    new_value = _text(item, "propertyValue", position)
    target = PERSONAL_PROPERTIES.get(property_name or "", "property_value")
    value[target] = new_value
    return SourceRecord(
        record_id=record_id,
        value=value,
        key=str(contact_id),
        stream=stream,
        event_time=when,
    )
