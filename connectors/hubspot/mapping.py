"""HubSpot records as the events of ``schemas/marketing``: property names to canonical field
names, property strings to typed values, and the reasons a record cannot be read.

HubSpot sends every CRM property value as a string (``"42"``, ``"true"``, an ISO-8601
datetime); a value that does not parse as its declared type (text in a number property,
written by a legacy import) makes the record a quarantine record whose reason names the
property, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hub.quarantine import QuarantineReason

Kind = Literal["str", "int", "float", "bool", "ts"]

EMAIL_EVENT_TYPES = frozenset(
    {
        "SENT",
        "DROPPED",
        "PROCESSED",
        "DELIVERED",
        "DEFERRED",
        "BOUNCE",
        "OPEN",
        "CLICK",
        "PRINT",
        "FORWARD",
        "STATUSCHANGE",
        "SPAMREPORT",
        "SUGGESTION",
        "UNBOUNCE",
    }
)


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the Avro field
    source: str  # the HubSpot property
    kind: Kind = "str"


@dataclass(frozen=True, slots=True)
class ObjectMapping:
    object_type: str  # contacts, companies
    id_field: str
    modified: str  # the property holding the last modification time
    fields: tuple[Field, ...]

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(f.source for f in self.fields)


CONTACTS = ObjectMapping(
    "contacts",
    "contact_id",
    "lastmodifieddate",
    (
        Field("email", "email"),
        Field("first_name", "firstname"),
        Field("last_name", "lastname"),
        Field("phone", "phone"),
        Field("company", "company"),
        Field("job_title", "jobtitle"),
        Field("lifecycle_stage", "lifecyclestage"),
        Field("lead_status", "hs_lead_status"),
        Field("city", "city"),
        Field("country", "country"),
        Field("message", "message"),
        Field("email_optout", "hs_email_optout", "bool"),
        Field("conversion_events", "num_conversion_events", "int"),
        Field("created_at", "createdate", "ts"),
        Field("updated_at", "lastmodifieddate", "ts"),
    ),
)

COMPANIES = ObjectMapping(
    "companies",
    "company_id",
    "hs_lastmodifieddate",
    (
        Field("name", "name"),
        Field("domain", "domain"),
        Field("industry", "industry"),
        Field("employees", "numberofemployees", "int"),
        Field("annual_revenue", "annualrevenue", "float"),
        Field("city", "city"),
        Field("country", "country"),
        Field("phone", "phone"),
        Field("created_at", "createdate", "ts"),
        Field("updated_at", "hs_lastmodifieddate", "ts"),
    ),
)

CAMPAIGN_FIELDS = (
    Field("name", "hs_name"),
    Field("start_date", "hs_start_date"),
    Field("end_date", "hs_end_date"),
    Field("status", "hs_campaign_status"),
    Field("notes", "hs_notes"),
    Field("audience", "hs_audience"),
    Field("currency_code", "hs_currency_code"),
    Field("owner_id", "hs_owner"),
)
CAMPAIGN_PROPERTIES = tuple(f.source for f in CAMPAIGN_FIELDS)

PRIMARY_TYPE_ID = 1  # HubSpot's "Primary" contact-to-company association type

_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "ts": "a date-time",
}


def millis(value: Any) -> int | None:
    """Epoch milliseconds from an ISO-8601 datetime or a number of milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)


def _convert(kind: Kind, value: str) -> Any:
    """The typed value, or raise ValueError."""
    if kind == "int":
        number = float(value)
        if not number.is_integer():
            raise ValueError(kind)
        return int(number)
    if kind == "float":
        return float(value)
    if kind == "bool":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(kind)
        return lowered == "true"
    if kind == "ts":
        ms = millis(value)
        if ms is None:
            raise ValueError(kind)
        return ms
    return value


def _typed(
    fields: Sequence[Field],
    props: Mapping[str, Any],
    out: dict[str, Any],
    reasons: list[QuarantineReason],
) -> None:
    for f in fields:
        raw = props.get(f.source)
        if raw is None or raw == "":
            out[f.name] = None
            continue
        if f.kind == "str":
            out[f.name] = str(raw)
            continue
        try:
            out[f.name] = _convert(f.kind, str(raw))
        except ValueError:
            out[f.name] = None
            reasons.append(
                QuarantineReason(
                    "hubspot.property.type",
                    f.source,
                    f"property {f.source} is not {_WORDS[f.kind]}",
                )
            )


@dataclass(frozen=True, slots=True)
class Mapped:
    """One source object: its id, its modification time, its value or the reasons."""

    id: str | None
    modified: int | None
    value: dict[str, Any] | None
    reasons: tuple[QuarantineReason, ...]


def map_object(obj: Any, mapping: ObjectMapping) -> Mapped:
    """A contact or company (``SimplePublicObject``) as its event value."""
    if not isinstance(obj, dict) or not isinstance(obj.get("properties"), dict):
        reason = QuarantineReason("hubspot.shape", None, "the object has no properties")
        return Mapped(None, None, None, (reason,))
    props: dict[str, Any] = obj["properties"]
    oid = obj.get("id")
    oid = str(oid) if oid is not None else None
    reasons: list[QuarantineReason] = []
    if not oid or not oid.isdigit():
        reasons.append(QuarantineReason("hubspot.id", "id", "the object id is not a number"))
    modified = millis(props.get(mapping.modified)) or millis(obj.get("updatedAt"))
    if modified is None:
        reasons.append(
            QuarantineReason(
                "hubspot.modified", mapping.modified, f"{mapping.modified} is missing or not a date"
            )
        )
    value: dict[str, Any] = {mapping.id_field: oid}
    _typed(mapping.fields, props, value, reasons)
    if value.get("updated_at") is None:
        value["updated_at"] = modified
    archived_at = millis(obj.get("archivedAt"))
    value["archived"] = bool(obj.get("archived")) or archived_at is not None
    value["archived_at"] = archived_at
    if reasons:
        return Mapped(oid, modified, None, tuple(reasons))
    return Mapped(oid, modified, value, ())


def map_campaign(obj: Any) -> Mapped:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return Mapped(
            None, None, None, (QuarantineReason("hubspot.id", "id", "the campaign has no id"),)
        )
    props: dict[str, Any] = obj["properties"] if isinstance(obj.get("properties"), dict) else {}
    reasons: list[QuarantineReason] = []
    value: dict[str, Any] = {"campaign_id": obj["id"]}
    _typed(CAMPAIGN_FIELDS, props, value, reasons)
    created, updated = millis(obj.get("createdAt")), millis(obj.get("updatedAt"))
    if updated is None:
        reasons.append(
            QuarantineReason("hubspot.modified", "updatedAt", "updatedAt is missing or not a date")
        )
    value["created_at"] = created
    value["updated_at"] = updated
    units = obj.get("businessUnits")
    value["business_unit_ids"] = (
        [int(u["id"]) for u in units if isinstance(u, dict) and isinstance(u.get("id"), int)]
        if isinstance(units, list)
        else []
    )
    if reasons:
        return Mapped(obj["id"], updated, None, tuple(reasons))
    return Mapped(obj["id"], updated, value, ())


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def map_email_event(event: Any) -> Mapped:
    """A marketing e-mail event (``/email/public/v1/events``) as its event value."""
    if not isinstance(event, dict):
        return Mapped(
            None,
            None,
            None,
            (QuarantineReason("hubspot.shape", None, "the event is not an object"),),
        )
    eid = event.get("id")
    eid = str(eid) if eid else None
    created = _int(event.get("created"))
    kind = event.get("type")
    reasons: list[QuarantineReason] = []
    if eid is None:
        reasons.append(QuarantineReason("hubspot.id", "id", "the event has no id"))
    if created is None:
        reasons.append(
            QuarantineReason(
                "hubspot.event.created", "created", "created is missing or not epoch milliseconds"
            )
        )
    if kind not in EMAIL_EVENT_TYPES:
        reasons.append(
            QuarantineReason("hubspot.event.type", "type", "not an e-mail event type of the API")
        )
    recipient = event.get("recipient")
    if kind != "UNBOUNCE" and not (isinstance(recipient, str) and recipient):
        reasons.append(
            QuarantineReason("hubspot.event.recipient", "recipient", "the event has no recipient")
        )
    if reasons:
        return Mapped(eid, created, None, tuple(reasons))
    sent_by, browser, location = (_object(event.get(k)) for k in ("sentBy", "browser", "location"))
    value = {
        "event_id": eid,
        "type": kind,
        "created_at": created,
        "recipient": recipient,
        "email_campaign_id": _int(event.get("emailCampaignId")),
        "portal_id": _int(event.get("portalId")),
        "app_id": _int(event.get("appId")),
        "app_name": _str(event.get("appName")),
        "sent_by_id": _str(sent_by.get("id")),
        "sent_by_created_at": _int(sent_by.get("created")),
        "url": _str(event.get("url")),
        "user_agent": _str(event.get("userAgent")),
        "browser_name": _str(browser.get("name")),
        "location_city": _str(location.get("city")),
        "location_country": _str(location.get("country")),
        "bounce_category": _str(event.get("category")),
    }
    return Mapped(eid, created, value, ())


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def associations_value(
    contact_id: str, modified: int | None, links: Sequence[Any]
) -> tuple[dict[str, Any] | None, tuple[QuarantineReason, ...]]:
    """A contact's company associations (v4 ``to`` items) as one snapshot value."""
    companies: list[dict[str, Any]] = []
    for link in links:
        to = link.get("toObjectId") if isinstance(link, dict) else None
        types = link.get("associationTypes") if isinstance(link, dict) else None
        if to is None or not isinstance(types, list):
            reason = QuarantineReason(
                "hubspot.association", "to", "an association has no toObjectId or associationTypes"
            )
            return None, (reason,)
        type_ids = sorted(
            int(t["typeId"])
            for t in types
            if isinstance(t, dict) and isinstance(t.get("typeId"), int)
        )
        labels = sorted(str(t["label"]) for t in types if isinstance(t, dict) and t.get("label"))
        companies.append(
            {
                "company_id": str(to),
                "primary": PRIMARY_TYPE_ID in type_ids,
                "labels": labels,
                "type_ids": type_ids,
            }
        )
    companies.sort(key=lambda c: str(c["company_id"]))
    value = {"contact_id": contact_id, "companies": companies, "contact_updated_at": modified}
    return value, ()


__all__ = [
    "CAMPAIGN_PROPERTIES",
    "COMPANIES",
    "CONTACTS",
    "EMAIL_EVENT_TYPES",
    "Mapped",
    "ObjectMapping",
    "associations_value",
    "map_campaign",
    "map_email_event",
    "map_object",
    "millis",
]
