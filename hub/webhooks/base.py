"""What a connector plugin hands the hub so the hub can receive its webhooks.

The split: the **plugin owns its format** (which signature scheme its source uses, the
secret from its config, the streams its deliveries become and how a body is read into
records); the **hub owns the plumbing** (verifying signatures and timestamps, refusing
replays, publishing with acknowledgement, quarantine, metrics: ``hub.webhooks.receiver``).

A plugin class offers webhooks with a classmethod::

    @classmethod
    def webhooks(cls, config: MyConfig) -> WebhookSpec | None: ...

returning None when its config enables none (no ``webhook.secret``). ``parse`` turns one
delivery's body into ``SourceRecord``s — the records connectors already yield, so a
delivery's events are published exactly as a poll's: Avro on the stream's topic with
CloudEvents headers, keyed by the entity, the event id derived from ``record_id`` (a
redelivery of the same source event gets the same id). A record with ``reasons`` goes to
quarantine (e.g. an event type the plugin does not map); a body that is not the source's
documented JSON raises ``BadPayload`` and is quarantined whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from hub.errors import SchemaError
from hub.sdk.streams import SourceRecord, Stream

if TYPE_CHECKING:
    from hub.webhooks.signatures import SignatureScheme

__all__ = ["BadPayload", "SignedRequest", "WebhookPlugin", "WebhookSpec"]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of an HTTP request a signature can cover. ``headers`` is looked up with
    lower-case names (Starlette's ``Headers`` is case-insensitive; a dict needs lower-case
    keys)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


class BadPayload(SchemaError):
    """The body of a correctly signed delivery is not the source's documented JSON.

    ``rule_id`` and ``field`` go to the quarantine reason; the message names the field and
    the position of the item, never a value."""

    def __init__(self, rule_id: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.field = field


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """One connector's webhook endpoint, as its plugin describes it."""

    scheme: SignatureScheme  # how the source signs (hub.webhooks.signatures)
    secret: SecretStr  # the key of that signature, from the connector's config
    streams: tuple[Stream, ...]  # where the records of a delivery go
    parse: Callable[[bytes], Sequence[SourceRecord]]  # raises BadPayload
    department: str
    # The URL the source signs, when the scheme covers it and the hub is reached through
    # a proxy or under another name (HubSpot: the app's target URL). None: the URL the
    # request arrived at.
    signed_url: str | None = None


class WebhookPlugin(Protocol):
    """A connector plugin class that offers webhooks."""

    @classmethod
    def webhooks(cls, config: Any) -> WebhookSpec | None: ...
