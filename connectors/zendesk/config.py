"""The Zendesk connector's config (Connect-style keys: ``base.url``, ``api.token``, ...).

Secrets are ``SecretStr`` (the worker resolves ``${env:…}`` references before the
connector sees them). Give ``subdomain`` (https://{subdomain}.zendesk.com) or ``base.url``,
and ``email`` + ``api.token`` (an API token) or ``oauth.token`` (an OAuth access token).
``webhook.secret`` (optional) turns on the webhook endpoint (``connectors.zendesk.webhooks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.zendesk.policy import DEFAULT_POLICY

__all__ = ["STREAM_NAMES", "ZendeskConfig"]

STREAM_NAMES = ("tickets", "ticket_comments", "users", "organizations")


class ZendeskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="zendesk", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    subdomain: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Zendesk subdomain: the API is https://{subdomain}.zendesk.com",
    )
    base_url: str | None = Field(
        default=None,
        description="The API's root URL instead of subdomain (a host-mapped domain, a local "
        "simulator)",
    )
    email: str | None = Field(default=None, description="Agent e-mail of an API token")
    api_token: SecretStr | None = Field(default=None, description="API token (with email)")
    oauth_token: SecretStr | None = Field(
        default=None, description="OAuth access token (instead of email + api.token)"
    )
    department: str = Field(default="service", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    select: tuple[str, ...] = Field(
        default=STREAM_NAMES, description="Streams to read (comma-separated); default: all"
    )
    start_time: int = Field(
        default=0, ge=0, description="Where the first read starts (Unix seconds)"
    )
    exclude_deleted: bool = Field(
        default=False, description="Leave deleted tickets out of the ticket export"
    )
    page_size: int = Field(
        default=1000, ge=1, le=1000, description="Items per export page (Zendesk: at most 1000)"
    )
    comments_page_size: int = Field(
        default=100, ge=1, le=100, description="Comments per page (Zendesk: at most 100)"
    )
    comments_source: Literal["tickets", "events"] = Field(
        default="tickets",
        description="Where the comment stream reads: 'tickets', each changed ticket's "
        "comments (one request per ticket); 'events', the incremental ticket event export "
        "with comment events (up to 1,000 events a request, the export's rate limit)",
    )
    export_rate_limit: int = Field(
        default=10,
        ge=1,
        description="Export requests allowed per window (Zendesk: 10; 30 "
        "with the High Volume add-on)",
    )
    export_rate_window_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between the end of a stream's read and the "
        "next (the exports leave out the last minute anyway)",
    )
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)
    retry_backoff_seconds: float = Field(default=0.5, ge=0)
    retry_max_wait_seconds: float = Field(
        default=30.0, ge=0, description="Longer waits asked by the server go to the worker"
    )
    case_status_policy: Path = Field(
        default=DEFAULT_POLICY, description="Zendesk status -> CRM case status (YAML)"
    )
    tickets_topic: str = "crm.raw.service.tickets.v1"
    ticket_comments_topic: str = "crm.raw.service.ticket-comments.v1"
    users_topic: str = "crm.raw.service.users.v1"
    organizations_topic: str = "crm.raw.service.organizations.v1"
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret of the Zendesk webhook (as ${env:VAR} or ${file:...}); "
        "set, the hub receives ticket events on POST /webhooks/{name}",
    )
    ticket_webhooks_topic: str = "crm.raw.service.ticket-webhooks.v1"

    @field_validator("select", mode="before")
    @classmethod
    def _select(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(s.strip() for s in value.split(",") if s.strip())
        unknown = [s for s in value if s not in STREAM_NAMES]
        if unknown:
            raise ValueError(
                f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAM_NAMES)}"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://acme.zendesk.com")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _source_and_auth(self) -> ZendeskConfig:
        if (self.subdomain is None) == (self.base_url is None):
            raise ValueError("give subdomain or base.url (one of them)")
        token = self.email is not None and self.api_token is not None
        if token == (self.oauth_token is not None):
            raise ValueError("give email and api.token, or oauth.token (one of them)")
        if (self.email is None) != (self.api_token is None):
            raise ValueError("email and api.token go together")
        return self

    @property
    def api_root(self) -> str:
        return self.base_url or f"https://{self.subdomain}.zendesk.com"
