"""Zendesk's webhooks for the ``zendesk`` connector: ticket events of a webhook subscribed to
Zendesk events (``zen:event-type:ticket.*``), signed with the webhook's signing secret
(checked by the hub).

A delivery is one event::

    {"type": "zen:event-type:ticket.status_changed", "id": "cbe4028c-...",
     "time": "2025-01-08T10:12:07.672717030Z", "account_id": 12514403,
     "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:5158",
     "detail": {"id": "5158", "status": "OPEN", "priority": "LOW", "requester_id": "...",
                "subject": "...", "tags": [], "via": {"channel": "web_service"}, ...},
     "event": {"previous": "NEW", "current": "OPEN"}}

It becomes one ``TicketWebhookEvent`` on ``crm.raw.service.ticket-webhooks.v1``
(``ticket.webhooks.topic``), keyed by the ticket id, its record id
``ticket-webhooks:<account_id>:<id>`` (a redelivery is the same event). The ticket's
status is mapped to the CRM case status through the connector's case-status policy; a
status the policy does not map, and an event that is not about a ticket, go to quarantine
with the reason (answered 2xx: a retry would not change them). A body that is not such an
object is refused whole (``BadPayload``: 400 and quarantine).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.zendesk.policy import ZENDESK_STATUSES, CaseStatusPolicy, load_case_status_policy
from hub.quarantine import QuarantineReason, json_payload
from hub.sdk.streams import SourceRecord, Stream
from hub.webhooks.base import BadPayload, WebhookSpec
from hub.webhooks.signatures import ZENDESK

if TYPE_CHECKING:
    from connectors.zendesk.config import ZendeskConfig

__all__ = ["WEBHOOK_STREAM", "read_delivery", "webhook_spec", "webhook_stream"]

WEBHOOK_STREAM = "ticket-webhooks"
SCHEMA = "service/TicketWebhookEvent"
TICKET_EVENT_PREFIX = "zen:event-type:ticket."


class _Via(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel: str | None = None


class _Detail(BaseModel):
    """The ``detail`` of a ticket event (Zendesk sends ids as strings)."""

    model_config = ConfigDict(extra="ignore")
    id: int
    status: str | None = None
    subject: str | None = None
    priority: str | None = None
    type: str | None = None
    requester_id: int | None = None
    submitter_id: int | None = None
    assignee_id: int | None = None
    actor_id: int | None = None
    organization_id: int | None = None
    group_id: int | None = None
    brand_id: int | None = None
    via: _Via | None = None
    tags: list[str] = []
    external_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class _Delivery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(pattern=r"^zen:event-type:[a-z_]+\.[a-z_]+$")
    id: str = Field(min_length=1, max_length=200)
    time: datetime
    account_id: int
    subject: str = Field(max_length=200)
    detail: dict[str, Any]
    event: dict[str, Any] = {}
    zendesk_event_version: str | None = Field(default=None, max_length=40)


def webhook_stream(config: ZendeskConfig) -> Stream:
    return Stream(
        name=WEBHOOK_STREAM,
        topic=config.ticket_webhooks_topic,
        event_type="crm.service.ticket_webhook.received.v1",
        schema=SCHEMA,
        primary_key=("ticket_id",),
        replication_key=None,
        department=config.department,
    )


def webhook_spec(config: ZendeskConfig) -> WebhookSpec | None:
    """The connector's webhook endpoint; None without ``webhook.secret``."""
    if config.webhook_secret is None:
        return None
    stream = webhook_stream(config)
    policy = load_case_status_policy(config.case_status_policy)
    return WebhookSpec(
        scheme=ZENDESK,
        secret=config.webhook_secret,
        streams=(stream,),
        parse=lambda body: read_delivery(body, stream, policy),
        department=config.department,
    )


def _bad(exc: ValidationError, where: str) -> BadPayload:
    err = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    path = f"{where}.{field}" if where and field else (field or where or "body")
    return BadPayload(
        f"zendesk.webhook.{err['type']}", f"{path}: {err['msg']}", field=path if field else None
    )


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def read_delivery(body: bytes, stream: Stream, policy: CaseStatusPolicy) -> list[SourceRecord]:
    """The record of one delivery; ``BadPayload`` when it is not Zendesk's documented
    JSON (the reason names the field, never a value)."""
    try:
        raw = json.loads(body)
    except ValueError:
        raise BadPayload("zendesk.webhook.json", "the body is not JSON") from None
    if not isinstance(raw, dict):
        raise BadPayload("zendesk.webhook.shape", "the body is not a JSON object")
    try:
        delivery = _Delivery.model_validate(raw)
    except ValidationError as exc:
        raise _bad(exc, "") from None
    when = delivery.time if delivery.time.tzinfo else delivery.time.replace(tzinfo=UTC)
    record_id = f"{WEBHOOK_STREAM}:{delivery.account_id}:{delivery.id}"
    if not delivery.type.startswith(TICKET_EVENT_PREFIX):
        return [
            _quarantined(
                record_id,
                stream,
                raw,
                when,
                "zendesk.webhook.unsupported_type",
                "type",
                f"event type {delivery.type} is not a ticket event this connector maps",
            )
        ]
    try:
        detail = _Detail.model_validate(delivery.detail)
    except ValidationError as exc:
        raise _bad(exc, "detail") from None
    status = _lower(detail.status)
    case_status = policy.case_status(status) if status is not None else None
    if status is not None and case_status is None:
        shown = status if status in ZENDESK_STATUSES else "(a status Zendesk does not document)"
        return [
            _quarantined(
                record_id,
                stream,
                raw,
                when,
                "service.case_status.unmapped",
                "detail.status",
                f"status {shown} has no CRM case status in the case-status policy "
                f"(version {policy.version}); map it there",
                key=str(detail.id),
            )
        ]
    event = delivery.event
    previous, current = _scalar(event.get("previous")), _scalar(event.get("current"))
    simple = set(event) <= {"previous", "current"} and (
        (previous is not None or event.get("previous") is None)
        and (current is not None or event.get("current") is None)
    )
    value: dict[str, Any] = {
        "event_id": delivery.id,
        "event_type": delivery.type,
        "account_id": delivery.account_id,
        "subject": delivery.subject,
        "occurred_at": when,
        "event_version": delivery.zendesk_event_version,
        "ticket_id": detail.id,
        "status": status,
        "case_status": case_status,
        "case_status_policy": policy.version if case_status is not None else None,
        "previous": previous,
        "current": current,
        "change": None if simple else json.dumps(event, sort_keys=True, ensure_ascii=False),
        "ticket_subject": detail.subject,
        "priority": _lower(detail.priority),
        "ticket_type": _lower(detail.type),
        "requester_id": detail.requester_id,
        "submitter_id": detail.submitter_id,
        "assignee_id": detail.assignee_id,
        "actor_id": detail.actor_id,
        "organization_id": detail.organization_id,
        "group_id": detail.group_id,
        "brand_id": detail.brand_id,
        "channel": detail.via.channel if detail.via is not None else None,
        "tags": list(detail.tags),
        "external_id": detail.external_id,
        "created_at": detail.created_at,
        "updated_at": detail.updated_at,
    }
    return [
        SourceRecord(
            record_id=record_id, value=value, key=str(detail.id), stream=stream, event_time=when
        )
    ]


def _quarantined(
    record_id: str,
    stream: Stream,
    raw: dict[str, Any],
    when: datetime,
    rule_id: str,
    field: str,
    message: str,
    *,
    key: str | None = None,
) -> SourceRecord:
    return SourceRecord(
        record_id=record_id,
        key=key,
        stream=stream,
        reasons=(QuarantineReason(rule_id, field, message),),
        raw=json_payload(raw),
        event_time=when,
        error_class="SkippableError",
    )
