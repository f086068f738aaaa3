"""``POST /webhooks/{connector}``: signed webhook deliveries in, events on Kafka, 2xx only
after the broker acknowledged them.

``{connector}`` is a connector registered through the Connect API whose plugin offers
webhooks (``hub.webhooks.base``) and whose config sets ``webhook.secret``. For each
delivery the hub, in this order:

1. finds the connector (unknown, or without webhooks: **404**; paused or stopped: **503**
   with ``Retry-After``: the source keeps the delivery and retries);
2. reads the body (over ``max_body``: **413**);
3. verifies the signature with the plugin's scheme and the secret, the timestamp against
   the window, and refuses a signature already accepted (**401** with a short JSON
   reason; nothing is written to Kafka);
4. reads the body with the plugin's ``parse`` (not the documented JSON: **400**, and the
   body goes to the quarantine topic, sealed like every quarantined source payload);
5. publishes one event per record (Avro + CloudEvents headers, keyed by the entity, the
   event id derived from the source's event id) and waits for the acknowledgement
   (acks=all). Broker away or too slow: **503** with ``Retry-After``; the signature is
   given back, so the sender's retry is not taken for a replay.
6. answers **200** ``{"accepted": n, "quarantined": m}``.

Metrics: ``hub_webhook_requests_total{connector, outcome}``,
``hub_webhook_rejections_total{connector, reason}``,
``hub_webhook_events_total{connector, outcome}`` and the
``hub_webhook_request_seconds{connector}`` histogram. Unknown connector names are counted
as ``connector="-"`` (a path is not a label). Nothing here logs or answers a secret, a
signature, a body or a value from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from starlette.types import ASGIApp, Receive, Scope, Send

from hub import topics
from hub.connect import stream_codecs
from hub.connect_state import ConnectState
from hub.dlp.operators import KeyRing, keyring_from_master, seal
from hub.errors import ConfigError, HubError, RetriableError, SchemaError
from hub.events import (
    H_CONNECTOR,
    H_DEPARTMENT,
    H_SOURCE_RECORD,
    H_TRACE_ID,
    EventMeta,
    deterministic_id,
    digest,
    format_time,
)
from hub.quarantine import QuarantineReason, json_payload, quarantine_meta, quarantine_record
from hub.sdk.streams import SourceRecord, Stream
from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path
from hub.settings import Settings
from hub.webhooks.base import BadPayload, SignedRequest
from hub.webhooks.endpoints import Endpoint, build_endpoint
from hub.webhooks.http import (
    REJECTIONS,
    REQUESTS,
    UNKNOWN,
    Answer,
    MetricChildren,
    Throttled,
    respond,
    signed_url,
)
from hub.webhooks.publisher import KafkaPublisher, OutMessage
from hub.webhooks.signatures import MAX_AGE, MAX_FUTURE, ReplayGuard, SignatureRejected, verify

log = logging.getLogger(__name__)

__all__ = ["PREFIX", "STAGE_WEBHOOK", "WebhookMiddleware", "WebhookService"]

PREFIX = "/webhooks/"
STAGE_WEBHOOK = "webhook"
MAX_BODY = 1 << 20  # 1 MiB: HubSpot batches at most 100 events, Zendesk sends one
PAUSED_RETRY_AFTER = 60


class WebhookService:
    """The receiver's state for one API process: endpoints by connector, the replay guard,
    the publisher. ``start`` before serving, ``close`` at shutdown."""

    def __init__(
        self,
        state: ConnectState,
        publisher: KafkaPublisher,
        *,
        codec_for: Callable[[Stream], AvroCodec],
        quarantine_codec: AvroCodec,
        keys: KeyRing,
        bootstrap: str,
        clock: Callable[[], float] = time.time,
        max_age: float = MAX_AGE,
        max_future: float = MAX_FUTURE,
        max_body: int = MAX_BODY,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.publisher = publisher
        self.codec_for = codec_for
        self.quarantine_codec = quarantine_codec
        self.keys = keys
        self.bootstrap = bootstrap
        self.clock = clock
        self.max_age = max_age
        self.max_future = max_future
        self.max_body = max_body
        self.guard = ReplayGuard(max_age)
        self._endpoints: dict[str, Endpoint] = {}
        self._building = asyncio.Lock()
        self._log = Throttled()
        self._metrics = MetricChildren()
        self._on_close = on_close  # releases what from_settings opened (the registry client)

    @classmethod
    def from_settings(
        cls, settings: Settings, state: ConnectState, **options: Any
    ) -> WebhookService:
        registry = registry_client(settings.effective_registry_url)
        quarantine_text = load_schema_text(
            schema_path(settings.schemas_dir, "common/QuarantineRecord")
        )
        bootstrap = settings.require_bootstrap()
        publisher_options = {
            k: options.pop(k) for k in ("delivery_timeout", "linger_ms") if k in options
        }
        return cls(
            state,
            KafkaPublisher(bootstrap, **publisher_options),
            codec_for=stream_codecs(registry, settings.schemas_dir),
            quarantine_codec=AvroCodec(registry, topics.QUARANTINE, quarantine_text),
            keys=keyring_from_master(settings.dlp_master_key()),
            bootstrap=bootstrap,
            on_close=registry.close,
            **options,
        )

    def start(self) -> WebhookService:
        self.publisher.start()
        return self

    def close(self) -> None:
        self.publisher.close()
        if self._on_close is not None:
            self._on_close()

    # -- a delivery ---------------------------------------------------------------------

    async def receive(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ``POST /webhooks/{connector}`` (a raw ASGI call)."""
        started = time.perf_counter()
        name = scope["path"][len(PREFIX) :]
        label = UNKNOWN
        allow = None
        try:
            if scope["method"] != "POST":
                raise Answer(
                    405, "method_not_allowed", {"error": "method_not_allowed"}, allow="POST"
                )
            if not name or "/" in name:
                raise Answer(404, "not_found", {"error": "not_found", "message": "no such path"})
            endpoint = await self._endpoint(name)
            label = name  # a registered connector: a bounded label
            self._check_open(endpoint)
            status, body, retry_after = await self._deliver(endpoint, scope, receive)
            outcome = "accepted"
        except Answer as answer:
            status, body, retry_after = answer.status, answer.body, answer.retry_after
            outcome, allow = answer.outcome, answer.allow
        self._metrics.request(label, outcome).inc()
        self._metrics.latency(label).observe(time.perf_counter() - started)
        await respond(send, status, body, retry_after, allow)

    async def _endpoint(self, name: str) -> Endpoint:
        state = self.state
        version = state.version
        endpoint = self._endpoints.get(name)
        if endpoint is None or endpoint.version != version:
            raw = state.config(name)
            if raw is None:
                raise Answer(
                    404, "not_found", {"error": "not_found", "message": "unknown connector"}
                )
            if endpoint is None or endpoint.raw != raw:
                endpoint = await self._build(name, raw)
            endpoint.target = state.target_state(name)
            endpoint.version = version
        return endpoint

    @staticmethod
    def _check_open(endpoint: Endpoint) -> None:
        if endpoint.spec is None:
            raise Answer(
                404,
                "not_found",
                {"error": "not_found", "message": "this connector has no webhook endpoint"},
            )
        if endpoint.target != "STARTED":
            raise Answer(
                503,
                "paused",
                {"error": "paused", "message": f"the connector is {endpoint.target.lower()}"},
                retry_after=PAUSED_RETRY_AFTER,
            )

    async def _build(self, name: str, raw: dict[str, Any]) -> Endpoint:
        async with self._building:
            endpoint = self._endpoints.get(name)
            if endpoint is not None and endpoint.raw == raw:
                return endpoint  # built by a request that held the lock before this one
            try:
                endpoint = await asyncio.to_thread(
                    build_endpoint,
                    name,
                    raw,
                    codec_for=self.codec_for,
                    quarantine_codec=self.quarantine_codec,
                    bootstrap=self.bootstrap,
                    state=self.state,
                )
            except ConfigError as exc:
                self._log.warning(f"config:{name}", exc.message)
                raise Answer(
                    503,
                    "misconfigured",
                    {
                        "error": "misconfigured",
                        "message": "the connector's webhook config cannot be used",
                    },
                    retry_after=PAUSED_RETRY_AFTER,
                ) from None
            except RetriableError as exc:
                self._log.warning(f"build:{name}", exc.message)
                raise Answer(
                    503,
                    "unavailable",
                    {"error": "unavailable", "message": "the event log is not reachable"},
                    retry_after=exc.retry_after or 5,
                ) from None
            self._endpoints[name] = endpoint
            return endpoint

    async def _deliver(
        self, endpoint: Endpoint, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], float | None]:
        spec = endpoint.spec
        assert spec is not None
        name = endpoint.name
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self._read_body(headers, receive)
        url = spec.signed_url or signed_url(scope, headers)
        signed = SignedRequest(scope["method"], url, headers, body)
        now = self.clock()
        try:
            verified = verify(
                spec.scheme,
                endpoint.secret,
                signed,
                now=now,
                max_age=self.max_age,
                max_future=self.max_future,
            )
        except SignatureRejected as exc:
            self._reject(name, exc.reason)
        key = name.encode() + b"\x00" + verified.digest
        if not self.guard.claim(key, verified.timestamp, now):
            self._reject(name, "replay")
        try:
            try:
                records = spec.parse(body)
            except BadPayload as exc:
                await self._quarantine_body(endpoint, body, exc)
                raise Answer(
                    400,
                    "malformed",
                    {"error": "malformed", "rule": exc.rule_id, "message": exc.message},
                ) from None
            messages, published, quarantined = self._messages(endpoint, records)
            await self.publisher.publish(messages)
        except Answer:
            raise
        except RetriableError as exc:
            self.guard.release(key)
            self._log.warning(f"publish:{name}", f"connector {name}: {exc.message}")
            raise Answer(
                503,
                "unavailable",
                {"error": "unavailable", "message": "the event log did not acknowledge"},
                retry_after=exc.retry_after or 5,
            ) from None
        except BaseException:
            self.guard.release(key)  # not accepted: the sender's retry is no replay
            raise
        if published:
            self._metrics.events(name, "published").inc(published)
        if quarantined:
            self._metrics.events(name, "quarantined").inc(quarantined)
        return 200, {"accepted": published, "quarantined": quarantined}, None

    def _reject(self, name: str, reason: str) -> NoReturn:
        REJECTIONS.labels(name, reason).inc()
        raise Answer(401, "rejected", {"error": reason})

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        too_large = Answer(413, "too_large", {"error": "too_large"})
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Answer(400, "disconnected", {"error": "disconnected"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- events -------------------------------------------------------------------------

    def _messages(
        self, endpoint: Endpoint, records: Sequence[SourceRecord]
    ) -> tuple[list[OutMessage], int, int]:
        name = endpoint.name
        now = datetime.now(UTC)
        captured: bytes | None = None
        out: list[OutMessage] = []
        published = quarantined = 0
        for rec in records:
            event_id = deterministic_id(name, rec.record_id)
            stream_out = endpoint.out(rec.stream)
            if not rec.reasons and rec.value is not None:
                try:
                    value = stream_out.codec.encode(rec.value)
                except SchemaError as exc:
                    reason = QuarantineReason("schema.encode", None, exc.message)
                    rec = replace(  # noqa: PLW2901 - the record goes on as a quarantine record
                        rec,
                        reasons=(reason,),
                        raw=json_payload(rec.value),
                        error_class="SchemaError",
                    )
                else:
                    key = (rec.key or rec.record_id).encode()
                    eid = event_id.encode()
                    if rec.event_time is not None:
                        when = format_time(rec.event_time).encode()
                    else:
                        captured = captured or format_time(now).encode()
                        when = captured
                    headers = [
                        *stream_out.static_headers,
                        ("ce_id", eid),
                        ("ce_time", when),
                        ("ce_subject", key),
                        (H_SOURCE_RECORD, rec.record_id.encode()),
                        (H_TRACE_ID, eid),
                    ]
                    out.append(OutMessage(stream_out.stream.topic, key, value, headers))
                    published += 1
                    continue
            department = stream_out.stream.department or self._department(endpoint)
            out.append(self._quarantined(endpoint, rec, event_id, department, now))
            quarantined += 1
        return out, published, quarantined

    @staticmethod
    def _department(endpoint: Endpoint) -> str:
        return endpoint.spec.department if endpoint.spec is not None else ""

    def _quarantined(
        self,
        endpoint: Endpoint,
        rec: SourceRecord,
        event_id: str,
        department: str,
        now: datetime,
        payload_format: str = "json",
    ) -> OutMessage:
        payload = rec.raw
        if payload is not None:
            payload = seal(self.keys, payload, aad=event_id.encode())
            payload_format = f"{payload_format}+sealed:default"
        record = quarantine_record(
            stage=STAGE_WEBHOOK,
            reasons=rec.reasons,
            origin_id=event_id,
            payload=payload,
            payload_format=payload_format,
            department=department,
            connector=endpoint.name,
            entity_id=rec.key,
            now=now,
            error_class=rec.error_class,
        )
        meta = quarantine_meta(record, None, endpoint.source)
        meta = EventMeta(
            meta.id,
            meta.source,
            meta.type,
            meta.subject,
            now,
            lineage={
                H_CONNECTOR: endpoint.name,
                H_DEPARTMENT: department,
                H_SOURCE_RECORD: rec.record_id,
                H_TRACE_ID: event_id,
            },
        )
        value = self.quarantine_codec.encode(record)
        key = (rec.key or rec.record_id).encode()
        return OutMessage(self.quarantine_codec.topic, key, value, meta.to_headers())

    async def _quarantine_body(self, endpoint: Endpoint, body: bytes, exc: BadPayload) -> None:
        """The whole body of a delivery that could not be read, to quarantine (sealed: it
        may hold personal data). Its id derives from the body, so a redelivery of the same
        body is the same quarantine record."""
        record_id = f"webhook-body:{digest(body)}"
        event_id = deterministic_id(endpoint.name, record_id)
        rec = SourceRecord(
            record_id=record_id,
            reasons=(QuarantineReason(exc.rule_id, exc.field, exc.message),),
            raw=body,
            error_class=type(exc).__name__,
        )
        message = self._quarantined(
            endpoint, rec, event_id, self._department(endpoint), datetime.now(UTC), "raw"
        )
        await self.publisher.publish([message])
        self._metrics.events(endpoint.name, "quarantined").inc()


class WebhookMiddleware:
    """Serves ``/webhooks/…`` ahead of the app's routing, as a raw ASGI handler: the body
    is read as bytes (signatures cover them) and no framework layer (routing, request
    objects, dependency machinery) sits on the hot path. Everything else goes on to the
    app. Add it with ``app.add_middleware(WebhookMiddleware)``; the service is taken from
    ``app.state.webhooks``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        service = getattr(getattr(scope.get("app"), "state", None), "webhooks", None)
        if not isinstance(service, WebhookService):
            body = {"error": "unavailable", "message": "webhooks are not enabled"}
            await respond(send, 503, body, 5)
            return
        try:
            await service.receive(scope, receive, send)
            return
        except HubError as exc:  # a plugin or codec failure: its message is safe to log
            log.error("webhooks: %s (%s)", exc.message, type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - its text may quote a value: the type only
            log.error("webhooks: delivery failed (%s)", type(exc).__name__)
        REQUESTS.labels(UNKNOWN, "error").inc()
        await respond(send, 500, {"error": "internal"})
