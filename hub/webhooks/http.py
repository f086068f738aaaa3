"""The HTTP side of the webhook receiver: its metrics, raw ASGI answers and the URL a
request was sent to. No secret, signature, body or value from one ever goes into an
answer, a label or a log line here."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import Scope, Send

log = logging.getLogger("hub.webhooks.receiver")

__all__ = [
    "EVENTS",
    "LATENCY",
    "REJECTIONS",
    "REQUESTS",
    "UNKNOWN",
    "Answer",
    "MetricChildren",
    "Throttled",
    "respond",
    "signed_url",
]

REQUESTS = Counter(
    "hub_webhook_requests_total",
    "Webhook deliveries by connector and outcome",
    ["connector", "outcome"],
)
REJECTIONS = Counter(
    "hub_webhook_rejections_total",
    "Webhook deliveries refused as not authentic, by reason",
    ["connector", "reason"],
)
EVENTS = Counter(
    "hub_webhook_events_total", "Events from webhook deliveries", ["connector", "outcome"]
)
LATENCY = Histogram(
    "hub_webhook_request_seconds",
    "Time to answer a webhook delivery (published deliveries include the acknowledgement)",
    ["connector"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
UNKNOWN = "-"


class MetricChildren:
    """Labelled metric children, looked up once (``labels()`` costs a lock and a tuple
    build per call; a delivery touches three of them)."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self._events: dict[tuple[str, str], Any] = {}

    def request(self, connector: str, outcome: str) -> Any:
        key = (connector, outcome)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = REQUESTS.labels(connector, outcome)
        return child

    def latency(self, connector: str) -> Any:
        child = self._latency.get(connector)
        if child is None:
            child = self._latency[connector] = LATENCY.labels(connector)
        return child

    def events(self, connector: str, outcome: str) -> Any:
        key = (connector, outcome)
        child = self._events.get(key)
        if child is None:
            child = self._events[key] = EVENTS.labels(connector, outcome)
        return child


class Answer(Exception):
    """Stop handling and answer ``status`` (counted under ``outcome``)."""

    def __init__(
        self,
        status: int,
        outcome: str,
        body: dict[str, Any],
        *,
        retry_after: float | None = None,
        allow: str | None = None,
    ) -> None:
        super().__init__(outcome)
        self.status = status
        self.outcome = outcome
        self.body = body
        self.retry_after = retry_after
        self.allow = allow


async def respond(
    send: Send,
    status: int,
    body: dict[str, Any],
    retry_after: float | None = None,
    allow: str | None = None,
) -> None:
    content = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if retry_after:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def signed_url(scope: Scope, headers: dict[str, str]) -> str:
    """The URL the request was sent to, as the sender wrote it (the path undecoded)."""
    host = headers.get("host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope.get("root_path", "") + scope["path"]
    query = scope.get("query_string", b"")
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    return f"{url}?{query.decode('latin-1')}" if query else url


class Throttled:
    """Logs a message at most once per ``every`` seconds per key (a broker outage under
    load would otherwise log thousands of lines a second)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.every) >= self.every:
            self._last[key] = now
            log.warning("webhooks: %s", message)
