"""HubSpot, the marketing department's automation platform, as a source connector.

Streams (one source partition each, ``{"stream": name}``):

- ``contacts`` and ``companies``: CRM v3 objects. A full pass through the list endpoint
  (then the archived ones), then incremental reads through the search API on the
  last-modified property; see ``readers`` for the cursors. One event per change, keyed by
  the object id; record id ``contacts:<id>:<modified ms>`` (an archived record:
  ``contacts:<id>:archived:<archivedAt ms>``), so reading the same change again yields the
  same event id.
- ``contact_company_associations``: each contact's company associations (v4 batch read)
  as one snapshot per contact, read as the contacts are (full pass, then the contacts that
  changed); a snapshot holds every company of the contact, so a removed association shows.
- ``campaigns``: marketing campaigns (``/marketing/v3/campaigns``), by ``updatedAt``.
- ``email_events``: marketing e-mail events (sends, deliveries, opens, clicks, bounces...:
  the campaign touches attribution is built from), in closed windows of creation time.

Deletions: an archived contact or company comes as a change with ``archived: true``
during each full pass (``full.resync.hours`` schedules them); a record erased for GDPR is
gone from every endpoint and is not seen here: the webhook endpoint carries it
(``contact.privacyDeletion``, see ``webhooks``; the hub receives it when ``webhook.secret``
is set).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.mapping import (
    CAMPAIGN_PROPERTIES,
    COMPANIES,
    CONTACTS,
    Mapped,
    ObjectMapping,
    associations_value,
    map_campaign,
    map_email_event,
    map_object,
)
from connectors.hubspot.readers import Batch, ObjectReader, read_campaigns, read_email_events
from connectors.hubspot.webhooks import webhook_spec
from hub.errors import ConfigError
from hub.quarantine import json_payload
from hub.sdk.http import RetryPolicy
from hub.sdk.streams import Cursor, SourceConnectorBase, SourcePartition, SourceRecord, Stream
from hub.webhooks.base import WebhookSpec

STREAMS = ("contacts", "companies", "contact_company_associations", "campaigns", "email_events")
SCHEMAS = {
    "contacts": ("marketing/Contact", "contact_id", "updated_at", "contact.changed"),
    "companies": ("marketing/Company", "company_id", "updated_at", "company.changed"),
    "contact_company_associations": (
        "marketing/ContactCompanyAssociations",
        "contact_id",
        "contact_updated_at",
        "contact_company_associations.changed",
    ),
    "campaigns": ("marketing/Campaign", "campaign_id", "updated_at", "campaign.changed"),
    "email_events": ("marketing/EmailEvent", "event_id", "created_at", "email_event.recorded"),
}
DAY_MS = 86_400_000


class HubSpotConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="hubspot", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    access_token: SecretStr = Field(
        description="A private app's access token (as ${env:VAR} or ${file:...}); scopes "
        "crm.objects.contacts.read, crm.objects.companies.read, marketing.campaigns.read, "
        "content"
    )
    base_url: str = Field(
        default="https://api.hubapi.com", pattern=r"^https?://", description="API root URL"
    )
    department: str = Field(default="marketing", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    topic_template: str = Field(
        default="crm.raw.{department}.{stream}.v1", description="Topic of each stream"
    )
    streams: tuple[str, ...] = Field(
        default=STREAMS, description="Streams to read (comma-separated); default: all"
    )
    start_date: datetime = Field(
        default=datetime(2020, 1, 1, tzinfo=UTC),
        description="E-mail events created before this are not read",
    )
    settle_seconds: float = Field(
        default=30.0, ge=0, description="Read changes older than this only (search index lag)"
    )
    page_size: int = Field(default=100, ge=1, le=100, description="List page size (max 100)")
    search_page_size: int = Field(default=100, ge=1, le=200)
    search_max_results: int = Field(
        default=10_000, ge=1, le=10_000, description="Results one search can page through"
    )
    email_events_page_size: int = Field(default=1000, ge=1, le=1000)
    email_events_window_days: float = Field(default=30.0, gt=0)
    full_resync_hours: float = Field(
        default=24.0,
        ge=0,
        description="Start a new full pass (and archived sweep) this often; 0: never",
    )
    account_timezone: str = Field(
        default="UTC",
        description="The account's time zone: its daily API limit resets at midnight there",
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    max_wait_seconds: float = Field(
        default=30.0, ge=0, description="Longer waits asked by the API go back to the worker"
    )
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_jitter_seconds: float = Field(default=0.5, ge=0)
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The app's client secret, which signs its webhooks (v3), as ${env:VAR} or "
        "${file:...}; set, the hub receives contact events on POST /webhooks/{name}",
    )
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The URL HubSpot calls (the app's target URL) when the hub is reached "
        "through a proxy or under another name; default: the URL the request arrived at",
    )

    @field_validator("streams", mode="before")
    @classmethod
    def _streams(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(s.strip() for s in value.split(",") if s.strip())
        unknown = [s for s in value if s not in STREAMS]
        if unknown:
            raise ValueError(f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAMS)}")
        if not value:
            raise ValueError("names no stream")
        return value

    @field_validator("account_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name") from None
        return value

    @field_validator("topic_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(department="x", stream="x", connector="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "a template may use only {department}, {stream}, {connector}"
            ) from None
        return value


def _now_ms() -> int:
    return int(time.time() * 1000)


def _raw(obj: Any) -> bytes | None:
    """What could be read of a record, for its quarantine record (re-drive)."""
    return json_payload(obj if isinstance(obj, dict) else {"unreadable": obj})


def _when(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


class HubSpotConnector(SourceConnectorBase):
    """Plugin ``hubspot`` (entry point group ``crm_hub.connectors``)."""

    Config = HubSpotConfig
    version = "0.1.0"

    @classmethod
    def webhooks(cls, config: HubSpotConfig) -> WebhookSpec | None:
        """Contact events pushed by HubSpot's Webhooks API (see ``webhooks``); None
        without ``webhook.secret``."""
        return webhook_spec(config)

    def __init__(self, config: HubSpotConfig, *, clock: Callable[[], int] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.clock: Callable[[], int] = clock or (_now_ms)  # epoch ms
        self._client: HubSpotClient | None = None
        self._streams = tuple(
            Stream(
                name=name,
                topic=config.topic_template.format(  # topic names use hyphens
                    department=config.department,
                    stream=name.replace("_", "-"),
                    connector=config.name,
                ),
                event_type=f"crm.{config.department}.{SCHEMAS[name][3]}.v1",
                schema=SCHEMAS[name][0],
                primary_key=(SCHEMAS[name][1],),
                replication_key=SCHEMAS[name][2],
            )
            for name in STREAMS
            if name in config.streams
        )

    @property
    def client(self) -> HubSpotClient:
        if self._client is None:
            c = self.config
            policy = RetryPolicy(
                connect_timeout=c.connect_timeout_seconds,
                read_timeout=c.read_timeout_seconds,
                attempts=c.max_attempts,
                backoff_initial=c.backoff_initial_seconds,
                jitter=c.backoff_jitter_seconds,
                max_wait=c.max_wait_seconds,
            )
            self._client = HubSpotClient(
                c.base_url.rstrip("/"),
                c.access_token,
                name=c.name,
                policy=policy,
                timezone=ZoneInfo(c.account_timezone),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def streams(self) -> Sequence[Stream]:
        return self._streams

    def check(self) -> None:
        """One cheap authenticated call: the first contact."""
        try:
            self.client.list_page("contacts", properties=("hs_object_id",), limit=1)
        finally:
            self.close()

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        """One stream read to its end; the HTTP connections are closed when it ends or is
        closed early (the runner closes the generator on stop)."""
        try:
            yield from super().fetch(part)
        finally:
            self.close()

    def fetch_stream(self, stream: Stream, cursor: Cursor | None) -> Iterator[SourceRecord]:
        cur = dict(cursor) if cursor else None
        if stream.name == "contacts":
            yield from self._objects(stream, CONTACTS, cur)
        elif stream.name == "companies":
            yield from self._objects(stream, COMPANIES, cur)
        elif stream.name == "contact_company_associations":
            yield from self._associations(stream, cur)
        elif stream.name == "campaigns":
            yield from self._campaigns(stream, cur)
        elif stream.name == "email_events":
            yield from self._email_events(stream, cur)
        else:  # pragma: no cover - streams() declares only the above
            raise ConfigError(f"connector {self.name}: no stream {stream.name}")

    # -- CRM objects --------------------------------------------------------------------------

    def _reader(
        self, mapping: ObjectMapping, properties: Sequence[str], archived: bool
    ) -> ObjectReader:
        c = self.config
        return ObjectReader(
            self.client,
            mapping.object_type,
            properties,
            mapping.modified,
            self.clock,
            page_size=c.page_size,
            search_page_size=c.search_page_size,
            max_results=c.search_max_results,
            settle_ms=int(c.settle_seconds * 1000),
            resync_ms=int(c.full_resync_hours * 3_600_000),
            archived=archived,
        )

    def _objects(
        self, stream: Stream, mapping: ObjectMapping, cursor: dict[str, Any] | None
    ) -> Iterator[SourceRecord]:
        reader = self._reader(mapping, mapping.properties, archived=True)
        prefix = mapping.object_type
        for batch in reader.read(cursor):
            for n, (obj, at) in enumerate(batch.items):
                mapped = map_object(obj, mapping)
                yield self._record(stream, prefix, mapped, obj, at, batch, n)
            if batch.checkpoint is not None:
                yield SourceRecord.at(batch.checkpoint)

    def _record(
        self,
        stream: Stream,
        prefix: str,
        mapped: Mapped,
        obj: Any,
        at: dict[str, Any] | None,
        batch: Batch,
        n: int,
    ) -> SourceRecord:
        value = mapped.value
        if mapped.id is None:
            rid = f"{prefix}:unreadable:{batch.phase}:{json.dumps(at, sort_keys=True)}:{n}"
        elif value is not None and value.get("archived_at") is not None:
            rid = f"{prefix}:{mapped.id}:archived:{value['archived_at']}"
        else:
            rid = f"{prefix}:{mapped.id}:{mapped.modified}"
        return self._plain(stream, rid, mapped, obj, at)

    def _associations(
        self, stream: Stream, cursor: dict[str, Any] | None
    ) -> Iterator[SourceRecord]:
        client = self.client

        def associations_of(contacts: list[Any]) -> dict[str, list[dict[str, Any]]]:
            ids = [str(c["id"]) for c in contacts if isinstance(c, dict) and c.get("id")]
            return client.company_associations(ids) if ids else {}

        reader = self._reader(CONTACTS, (CONTACTS.modified,), archived=False)
        reader.enrich = associations_of  # one v4 batch read per page, fetched with it
        for batch in reader.read(cursor):
            readable = [(o, at, map_object(o, CONTACTS)) for o, at in batch.items]
            links: dict[str, list[dict[str, Any]]] = batch.extra or {}
            for n, (obj, at, mapped) in enumerate(readable):
                if mapped.id is None or mapped.modified is None:
                    yield self._record(stream, stream.name, mapped, obj, at, batch, n)
                    continue
                value, reasons = associations_value(
                    mapped.id, mapped.modified, links.get(mapped.id, [])
                )
                digest = hashlib.sha256(
                    json.dumps(value or links.get(mapped.id), sort_keys=True).encode()
                ).hexdigest()[:16]
                basis = f"full{batch.started}" if batch.phase == "full" else str(mapped.modified)
                rid = f"{stream.name}:{mapped.id}:{basis}:{digest}"
                if reasons:
                    yield SourceRecord(
                        record_id=rid,
                        key=mapped.id,
                        stream=stream,
                        cursor=at,
                        reasons=reasons,
                        raw=json_payload({"id": mapped.id, "to": links.get(mapped.id)}),
                        event_time=_when(mapped.modified),
                        error_class="SkippableError",
                    )
                else:
                    yield SourceRecord(
                        record_id=rid,
                        value=value,
                        key=mapped.id,
                        stream=stream,
                        cursor=at,
                        event_time=_when(mapped.modified),
                    )
            if batch.checkpoint is not None:
                yield SourceRecord.at(batch.checkpoint)

    # -- marketing ----------------------------------------------------------------------------

    def _campaigns(self, stream: Stream, cursor: dict[str, Any] | None) -> Iterator[SourceRecord]:
        items = read_campaigns(
            self.client,
            cursor,
            page_size=min(self.config.page_size, 100),
            properties=CAMPAIGN_PROPERTIES,
        )
        for n, (obj, at) in enumerate(items):
            mapped = map_campaign(obj)
            rid = (
                f"campaigns:{mapped.id}:{mapped.modified}"
                if mapped.id
                else f"campaigns:unreadable:{n}"
            )
            yield self._plain(stream, rid, mapped, obj, at)

    def _email_events(
        self, stream: Stream, cursor: dict[str, Any] | None
    ) -> Iterator[SourceRecord]:
        c = self.config
        items = read_email_events(
            self.client,
            cursor,
            start_ms=int(c.start_date.timestamp() * 1000),
            window_ms=int(c.email_events_window_days * DAY_MS),
            page_size=c.email_events_page_size,
            settle_ms=int(c.settle_seconds * 1000),
            clock=self.clock,
        )
        for event, at in items:
            if event is None:
                assert at is not None
                yield SourceRecord.at(at)
                continue
            mapped = map_email_event(event)
            rid = (
                f"email_events:{mapped.id}"
                if mapped.id
                else f"email_events:unreadable:{json.dumps(at, sort_keys=True)}"
            )
            yield self._plain(stream, rid, mapped, event, at)

    def _plain(
        self, stream: Stream, rid: str, mapped: Mapped, obj: Any, at: dict[str, Any] | None
    ) -> SourceRecord:
        if mapped.reasons:
            return SourceRecord(
                record_id=rid,
                key=mapped.id,
                stream=stream,
                cursor=at,
                reasons=mapped.reasons,
                raw=_raw(obj),
                event_time=_when(mapped.modified),
                error_class="SkippableError",
            )
        return SourceRecord(
            record_id=rid,
            value=mapped.value,
            key=mapped.id,
            stream=stream,
            cursor=at,
            event_time=_when(mapped.modified),
        )


__all__ = ["STREAMS", "HubSpotConfig", "HubSpotConnector"]
