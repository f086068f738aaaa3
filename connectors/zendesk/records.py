"""Zendesk items (as the API sends them) -> the values of the service department's schemas.

Each reader checks one item with a pydantic model of the documented shape (ids are JSON
integers, times ISO-8601, flags booleans; unknown fields are ignored) and returns a
``ReadItem``: the Avro value, or the machine-readable reasons it cannot be read. Reasons
name the field and what is wrong with it, never the value (pydantic's messages do not
quote the input; the payload goes to quarantine apart, sealed by the runner).

A ticket's Zendesk status is mapped to the CRM case status by ``CaseStatusPolicy``; a
status the policy does not map makes the ticket a quarantine record, never a near value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from connectors.zendesk.policy import ZENDESK_STATUSES, CaseStatusPolicy
from hub.quarantine import QuarantineReason

__all__ = [
    "ReadItem",
    "SortKey",
    "read_comment",
    "read_organization",
    "read_ticket",
    "read_user",
]

SortKey = tuple[int, int]  # (timestamp, id): the order of Zendesk's incremental exports

Id = Annotated[int, Strict(), Field(gt=0)]
OptId = Annotated[int, Strict(), Field(gt=0)] | None
Text = Annotated[str, Strict()]
Flag = Annotated[bool, Strict()]
Stamp = Annotated[int, Strict(), Field(ge=0)]


class _Source(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Via(_Source):
    channel: Text | Annotated[int, Strict()] | None = None


class _Rating(_Source):
    score: Text | None = None


class TicketIn(_Source):
    id: Id
    generated_timestamp: Stamp
    status: Text
    external_id: Text | None = None
    subject: Text | None = None
    description: Text | None = None
    priority: Text | None = None
    type: Text | None = None
    requester_id: OptId = None
    submitter_id: OptId = None
    assignee_id: OptId = None
    organization_id: OptId = None
    group_id: OptId = None
    brand_id: OptId = None
    tags: list[Text] = []
    via: _Via | None = None
    satisfaction_rating: _Rating | None = None
    due_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class UserIn(_Source):
    id: Id
    name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    role: Text
    organization_id: OptId = None
    external_id: Text | None = None
    locale: Text | None = None
    time_zone: Text | None = None
    active: Flag = True
    verified: Flag = False
    suspended: Flag = False
    tags: list[Text] = []
    details: Text | None = None
    notes: Text | None = None
    created_at: datetime
    updated_at: datetime


class OrganizationIn(_Source):
    id: Id
    name: Text
    external_id: Text | None = None
    domain_names: list[Text] = []
    group_id: OptId = None
    shared_tickets: Flag = False
    tags: list[Text] = []
    details: Text | None = None
    notes: Text | None = None
    created_at: datetime
    updated_at: datetime


class CommentIn(_Source):
    id: Id
    type: Text = "Comment"
    author_id: OptId = None
    body: Text | None = None
    plain_body: Text | None = None
    public: Flag = True
    via: _Via | None = None
    attachments: list[Any] = []
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One item read: a value, or reasons (then ``value`` is None)."""

    record_id: str
    key: str | None
    sort_key: SortKey | None  # None: the item's own position could not be read
    value: dict[str, Any] | None = None
    reasons: tuple[QuarantineReason, ...] = ()
    event_time: datetime | None = None
    error_class: str | None = None


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    elif t.utcoffset():
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_text(raw: Any, name: str, t: datetime) -> str:
    """The time as ISO-8601 UTC text: the source's own text when it is already that form
    (``2025-10-09T08:53:20Z``, as Zendesk sends it; pydantic checked it), else formatted."""
    text = raw.get(name)
    if type(text) is str and len(text) == 20 and text[10] == "T" and text[19] == "Z":
        return text
    return _iso(t)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _channel(via: _Via | None) -> str | None:
    return None if via is None or via.channel is None else str(via.channel)


def _int(raw: Any, name: str) -> int | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stamp(raw: Any, name: str) -> int | None:
    """A time field of a raw item as Unix seconds, when it can be read."""
    value = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return int(_utc(datetime.fromisoformat(value.replace("Z", "+00:00"))).timestamp())
    except ValueError:
        return None


def _digest(raw: Any) -> str:
    text = json.dumps(raw, sort_keys=True, default=str).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _reasons(exc: ValidationError) -> tuple[QuarantineReason, ...]:
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(p) for p in err["loc"]) or None
        out.append(QuarantineReason(f"zendesk.{err['type']}", field, err["msg"]))
    return tuple(out)


def _unreadable(
    stream: str, raw: Any, exc: ValidationError, stamp: int | None, what: str
) -> ReadItem:
    """A quarantine item: its id from the parts that could be read, else a digest."""
    item_id = _int(raw, "id")
    if item_id is not None and stamp is not None:
        record_id, key = f"{stream}:{item_id}:{stamp}", str(item_id)
    elif item_id is not None and what == "comment":
        record_id, key = f"{stream}:{item_id}", None
    else:
        record_id, key = f"{stream}:unreadable:{_digest(raw)}", None
    sort_key = (stamp, item_id) if stamp is not None and item_id is not None else None
    return ReadItem(record_id, key, sort_key, reasons=_reasons(exc), error_class="SchemaError")


def read_ticket(raw: Any, policy: CaseStatusPolicy) -> ReadItem:
    try:
        t = TicketIn.model_validate(raw)
    except ValidationError as exc:
        return _unreadable("tickets", raw, exc, _int(raw, "generated_timestamp"), "ticket")
    record_id, key = f"tickets:{t.id}:{t.generated_timestamp}", str(t.id)
    sort_key = (t.generated_timestamp, t.id)
    event_time = datetime.fromtimestamp(t.generated_timestamp, UTC)
    case_status = policy.case_status(t.status)
    if case_status is None:
        shown = (
            f"ticket status {t.status!r}"
            if t.status in ZENDESK_STATUSES
            else ("a ticket status outside Zendesk's documented values")
        )
        reason = QuarantineReason(
            "service.case_status.unmapped",
            "status",
            f"{shown} has no CRM case status in the case-status policy "
            f"(version {policy.version}); map it there, or fix the ticket at the source",
        )
        return ReadItem(
            record_id,
            key,
            sort_key,
            reasons=(reason,),
            event_time=event_time,
            error_class="DataQualityError",
        )
    value = {
        "ticket_id": t.id,
        "generated_timestamp": t.generated_timestamp,
        "external_id": t.external_id,
        "subject": t.subject,
        "description": t.description,
        "status": t.status,
        "case_status": case_status,
        "case_status_policy": policy.version,
        "priority": t.priority,
        "ticket_type": t.type,
        "requester_id": t.requester_id,
        "submitter_id": t.submitter_id,
        "assignee_id": t.assignee_id,
        "organization_id": t.organization_id,
        "group_id": t.group_id,
        "brand_id": t.brand_id,
        "channel": _channel(t.via),
        "tags": t.tags,
        "satisfaction_score": t.satisfaction_rating.score if t.satisfaction_rating else None,
        "due_at": _iso(t.due_at) if t.due_at is not None else None,
        "created_at": _as_text(raw, "created_at", t.created_at),
        "updated_at": _as_text(raw, "updated_at", t.updated_at),
    }
    return ReadItem(record_id, key, sort_key, value, event_time=event_time)


def read_user(raw: Any) -> ReadItem:
    try:
        u = UserIn.model_validate(raw)
    except ValidationError as exc:
        return _unreadable("users", raw, exc, _stamp(raw, "updated_at"), "user")
    updated = _utc(u.updated_at)
    stamp = int(updated.timestamp())
    value = {
        "user_id": u.id,
        "name": u.name,
        "email": u.email,
        "phone": u.phone,
        "role": u.role,
        "organization_id": u.organization_id,
        "external_id": u.external_id,
        "locale": u.locale,
        "time_zone": u.time_zone,
        "active": u.active,
        "verified": u.verified,
        "suspended": u.suspended,
        "tags": u.tags,
        "details": u.details,
        "notes": u.notes,
        "created_at": _as_text(raw, "created_at", u.created_at),
        "updated_at": _as_text(raw, "updated_at", updated),
    }
    return ReadItem(f"users:{u.id}:{stamp}", str(u.id), (stamp, u.id), value, event_time=updated)


def read_organization(raw: Any) -> ReadItem:
    try:
        o = OrganizationIn.model_validate(raw)
    except ValidationError as exc:
        return _unreadable("organizations", raw, exc, _stamp(raw, "updated_at"), "organization")
    updated = _utc(o.updated_at)
    stamp = int(updated.timestamp())
    value = {
        "organization_id": o.id,
        "name": o.name,
        "external_id": o.external_id,
        "domain_names": o.domain_names,
        "group_id": o.group_id,
        "shared_tickets": o.shared_tickets,
        "tags": o.tags,
        "details": o.details,
        "notes": o.notes,
        "created_at": _as_text(raw, "created_at", o.created_at),
        "updated_at": _as_text(raw, "updated_at", updated),
    }
    return ReadItem(
        f"organizations:{o.id}:{stamp}", str(o.id), (stamp, o.id), value, event_time=updated
    )


def read_comment(raw: Any, ticket_id: int) -> ReadItem:
    """A comment of ``ticket_id``; keyed by the ticket, so a case's comments stay in order."""
    try:
        c = CommentIn.model_validate(raw)
    except ValidationError as exc:
        bad = _unreadable("ticket_comments", raw, exc, None, "comment")
        return ReadItem(
            bad.record_id, str(ticket_id), None, reasons=bad.reasons, error_class=bad.error_class
        )
    body = c.plain_body if c.plain_body is not None else c.body
    created = _utc(c.created_at)
    if body is None:
        reason = QuarantineReason(
            "zendesk.missing", "body", "the comment has neither body nor plain_body"
        )
        return ReadItem(
            f"ticket_comments:{c.id}",
            str(ticket_id),
            (int(created.timestamp()), c.id),
            reasons=(reason,),
            event_time=created,
            error_class="SchemaError",
        )
    value = {
        "comment_id": c.id,
        "ticket_id": ticket_id,
        "author_id": c.author_id,
        "body": body,
        "public": c.public,
        "comment_type": c.type,
        "channel": _channel(c.via),
        "attachment_count": len(c.attachments),
        "created_at": _as_text(raw, "created_at", created),
    }
    return ReadItem(
        f"ticket_comments:{c.id}",
        str(ticket_id),
        (int(created.timestamp()), c.id),
        value,
        event_time=created,
    )
