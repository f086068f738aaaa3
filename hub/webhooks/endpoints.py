"""A connector's webhook endpoint, built from its config in ``ConnectState``: the plugin's
``WebhookSpec``, the resolved secret, a codec and CloudEvents headers per stream, and the
topics created. Built off the event loop (it reads files, calls the schema registry and
the broker), once per version of the connector's config.

Only the ``webhook.*`` keys must resolve here: other config-provider references (the API
token a poll needs, ...) may name variables only the connect workers have, so one that does
not resolve in this process is left as written, which validates for a ``SecretStr``. A
``webhook.*`` reference that does not resolve is a ``ConfigError`` naming the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub import topics
from hub.broker import ensure_topics
from hub.config_providers import resolve
from hub.connect_plugins import build_config, find_plugin
from hub.connect_state import ConnectState
from hub.errors import ConfigError, FatalError, RetriableError
from hub.events import AVRO_CONTENT_TYPE, H_CONNECTOR, H_DEPARTMENT, SPECVERSION, Headers
from hub.sdk.streams import Stream
from hub.serde import AvroCodec
from hub.webhooks.base import WebhookSpec

log = logging.getLogger(__name__)

__all__ = ["Endpoint", "StreamOut", "build_endpoint", "resolve_for_webhooks"]

WEBHOOK_KEY_PREFIXES = ("webhook.", "webhook_")


@dataclass(frozen=True, slots=True)
class StreamOut:
    stream: Stream
    codec: AvroCodec
    static_headers: Headers


@dataclass(slots=True)
class Endpoint:
    """What the receiver needs per connector; ``spec`` None: the connector has no
    webhooks (its plugin offers none, or its config enables none)."""

    name: str
    raw: dict[str, Any]  # the config as stored: rebuilt when it changes
    spec: WebhookSpec | None
    secret: bytes = b""
    outs: dict[str, StreamOut] = field(default_factory=dict)
    source: str = ""
    # ConnectState.version when ``raw`` and ``target`` were last read: unchanged, they
    # are still current (every applied config, target or status record bumps it).
    version: int = -1
    target: str = "STARTED"

    def out(self, stream: str | Stream | None) -> StreamOut:
        if isinstance(stream, Stream):
            stream = stream.name
        if stream is None:
            return next(iter(self.outs.values()))
        try:
            return self.outs[stream]
        except KeyError:
            raise FatalError(
                f"connector {self.name}: a webhook record names an undeclared stream"
            ) from None


def resolve_for_webhooks(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with its references resolved: strictly for ``webhook.*`` keys, where
    possible for the others (see the module doc)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(WEBHOOK_KEY_PREFIXES):
            out[key] = resolve(value)
            continue
        try:
            out[key] = resolve(value)
        except ConfigError:
            out[key] = value
    return out


def build_endpoint(
    name: str,
    raw: dict[str, Any],
    *,
    codec_for: Callable[[Stream], AvroCodec],
    quarantine_codec: AvroCodec,
    bootstrap: str,
    state: ConnectState | None = None,
) -> Endpoint:
    """The endpoint of connector ``name`` (blocking: call it in a thread).

    ``ConfigError`` for a config that cannot be used, ``RetriableError`` when the registry
    or the broker is away."""
    plugin = find_plugin(str(raw.get("connector.class", "")))
    hook = getattr(plugin.cls, "webhooks", None)
    if not callable(hook):
        return Endpoint(name, raw, None)
    config = build_config(plugin, name, resolve_for_webhooks(raw))
    spec = hook(config)
    if spec is None:
        return Endpoint(name, raw, None)
    if not isinstance(spec, WebhookSpec) or not spec.streams:
        raise ConfigError(f"connector {name}: its plugin's webhooks() gave no usable spec")
    secret = spec.secret.get_secret_value().encode()
    if not secret:
        raise ConfigError(f"connector {name}: webhook.secret is empty")
    source = f"urn:crm-hub:connector:{name}"
    outs: dict[str, StreamOut] = {}
    for stream in spec.streams:
        if stream.schema is None:
            raise ConfigError(f"connector {name}: webhook stream {stream.name} has no schema")
        codec = codec_for(stream)  # registers the schema: a refusal fails here
        department = stream.department or spec.department
        outs[stream.name] = StreamOut(
            stream,
            codec,
            [
                ("ce_specversion", SPECVERSION.encode()),
                ("ce_source", source.encode()),
                ("ce_type", stream.event_type.encode()),
                ("content-type", AVRO_CONTENT_TYPE.encode()),
                (H_CONNECTOR, name.encode()),
                (H_DEPARTMENT, department.encode()),
            ],
        )
    _ = quarantine_codec.schema_id
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        s.topic: (topics.DEFAULT_PARTITIONS, {}) for s in spec.streams
    }
    wanted[topics.QUARANTINE] = topics.TOPIC_SPECS[topics.QUARANTINE]
    try:
        ensure_topics(bootstrap, wanted)
    except FatalError as exc:
        raise RetriableError(
            f"connector {name}: webhook topics not ready ({exc.message})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the admin client's errors while the broker is away
        raise RetriableError(
            f"connector {name}: webhook topics not ready ({type(exc).__name__})"
        ) from None
    if state is not None:
        for stream in spec.streams:
            try:  # Connect's GET /connectors/{name}/topics lists them
                state.put_topic(name, stream.topic)
            except RetriableError as exc:
                log.warning("webhooks: %s", exc.message)
    return Endpoint(name, raw, spec, secret, outs, source)
