"""Zendesk's side of a webhook: realistic ticket-event deliveries (a webhook subscribed to
Zendesk events), signed the way Zendesk signs them (base64 HMAC-SHA256 of timestamp +
body), POSTed to a URL. For the demo's burst, the tests and the benchmark.

    from connectors.zendesk.webhook_sender import ticket_event, send
    send("http://127.0.0.1:8083/webhooks/zendesk", ticket_event(5158), secret="...")

``corrupt=True`` sends a signature that does not match (one byte changed).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from hub.webhooks.base import SignedRequest
from hub.webhooks.signatures import ZENDESK, sign

__all__ = ["BurstResult", "delivery_headers", "send", "send_burst", "ticket_event"]

ACCOUNT_ID = 12_514_403
WEBHOOK_ID = "01F1KRFQ6BG29CNWFR60NK5FNY"
_STATUSES = ("NEW", "OPEN", "PENDING", "HOLD", "SOLVED", "CLOSED")
_SUBJECTS = (
    "Cannot log in after password reset",
    "Invoice shows the wrong VAT number",
    "Export to CSV times out",
    "Please add a second admin to our account",
    "Order arrived damaged",
)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket_event(
    ticket_id: int,
    *,
    kind: str = "status_changed",
    previous: str = "NEW",
    current: str = "OPEN",
    seed: int = 0,
    event_id: str | None = None,
    account_id: int = ACCOUNT_ID,
    when: datetime | None = None,
) -> dict[str, Any]:
    """One ticket event as Zendesk's event webhooks send it (``kind``: status_changed,
    created, priority_changed, tags_changed, comment_added)."""
    rng = random.Random(seed * 1_000_003 + ticket_id)
    now = when or datetime.now(UTC)
    created = datetime.fromtimestamp(now.timestamp() - rng.randrange(60, 86_400 * 30), UTC)
    status = current if kind == "status_changed" else rng.choice(_STATUSES[:4])
    detail = {
        "actor_id": str(rng.randrange(10**12, 10**13)),
        "assignee_id": str(rng.randrange(10**12, 10**13)),
        "brand_id": "8447346621310",
        "created_at": _iso(created),
        "custom_status": str(rng.randrange(10**12, 10**13)),
        "description": "The customer wrote in about this; details in the first comment.",
        "external_id": None,
        "form_id": "8646151517822",
        "group_id": "8447320466430",
        "id": str(ticket_id),
        "is_public": True,
        "organization_id": str(rng.randrange(10**12, 10**13)),
        "priority": rng.choice(("LOW", "NORMAL", "HIGH", "URGENT")),
        "requester_id": str(rng.randrange(10**12, 10**13)),
        "status": status,
        "subject": rng.choice(_SUBJECTS),
        "submitter_id": str(rng.randrange(10**12, 10**13)),
        "tags": rng.sample(["billing", "login", "vip", "export", "shipping"], 2),
        "type": rng.choice(("QUESTION", "INCIDENT", "PROBLEM", "TASK")),
        "updated_at": _iso(now),
        "via": {"channel": rng.choice(("web_service", "email", "api", "voice"))},
    }
    event: dict[str, Any]
    if kind == "status_changed":
        event = {"previous": previous, "current": current}
    elif kind == "priority_changed":
        event = {"previous": "LOW", "current": detail["priority"]}
    elif kind == "tags_changed":
        event = {"tags_added": ["vip"], "tags_removed": []}
    elif kind == "comment_added":
        event = {
            "comment": {
                "id": str(rng.randrange(10**12, 10**13)),
                "body": "Thanks, a reset link is on its way.",
                "is_public": True,
                "author": {"id": detail["assignee_id"], "is_staff": True, "name": "Agent"},
            }
        }
    else:
        event = {}
    return {
        "account_id": account_id,
        "detail": detail,
        "event": event,
        "id": event_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "subject": f"zen:ticket:{ticket_id}",
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
        "type": f"zen:event-type:ticket.{kind}",
        "zendesk_event_version": "2022-11-06",
    }


def delivery_headers(
    body: bytes,
    secret: str,
    *,
    timestamp: float | None = None,
    corrupt: bool = False,
    account_id: int = ACCOUNT_ID,
) -> dict[str, str]:
    """The headers Zendesk sends with ``body``."""
    stamp = ZENDESK.format_timestamp(timestamp if timestamp is not None else time.time())
    signature = sign(ZENDESK, secret.encode(), SignedRequest("POST", "", {}, body), stamp)
    if corrupt:
        signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Zendesk Webhook",
        "X-Zendesk-Account-Id": str(account_id),
        "X-Zendesk-Webhook-Id": WEBHOOK_ID,
        "X-Zendesk-Webhook-Invocation-Id": str(random.randrange(10**9, 10**10)),
        "X-Zendesk-Webhook-Signature": signature,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def send(
    url: str,
    event: dict[str, Any],
    secret: str,
    *,
    client: httpx.Client | None = None,
    timestamp: float | None = None,
    corrupt: bool = False,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST one signed delivery of ``event`` to ``url``."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    headers = delivery_headers(body, secret, timestamp=timestamp, corrupt=corrupt)
    if client is not None:
        return client.post(url, content=body, headers=headers, timeout=timeout)
    with httpx.Client() as own:
        return own.post(url, content=body, headers=headers, timeout=timeout)


@dataclass
class BurstResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    bad_signatures: int = 0


def send_burst(
    url: str, secret: str, deliveries: int, *, bad_every: int = 0, seed: int = 0
) -> BurstResult:
    """``deliveries`` signed ticket events to ``url`` (status changes, new tickets, tag
    and priority changes, comments); every ``bad_every``-th (0: none) with a corrupted
    signature. Returns the answers by status."""
    kinds = ("status_changed", "created", "priority_changed", "tags_changed", "comment_added")
    rng = random.Random(seed)
    result = BurstResult()
    with httpx.Client() as client:
        for n in range(deliveries):
            kind = kinds[n % len(kinds)]
            previous, current = rng.sample(_STATUSES, 2)
            event = ticket_event(
                rng.randrange(1_000, 99_999),
                kind=kind,
                previous=previous,
                current=current,
                seed=seed + n,
            )
            bad = bool(bad_every) and (n + 1) % bad_every == 0
            answer = send(url, event, secret, client=client, corrupt=bad)
            result.sent += 1
            result.bad_signatures += bad
            result.statuses[answer.status_code] += 1
    return result
