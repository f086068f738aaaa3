"""HubSpot's side of a webhook: realistic contact-event deliveries, signed the way HubSpot
signs them (v3 over method, URI, body and timestamp; the legacy v1 signature too), POSTed
to a URL. For the demo's burst, the tests and the benchmark.

    from connectors.hubspot.webhook_sender import contact_events, send
    events = contact_events(3, seed=7)
    send("http://127.0.0.1:8083/webhooks/hubspot", events, secret="...")

``corrupt=True`` sends a signature that does not match (one byte changed), as a forged or
tampered request would carry.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.webhooks.base import SignedRequest
from hub.webhooks.signatures import HUBSPOT_V3, sign

__all__ = [
    "BurstResult",
    "contact_events",
    "corrupt_signature",
    "delivery_headers",
    "send",
    "send_burst",
]

PORTAL_ID = 62515
APP_ID = 54321
_FIRST = ("Ana", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gustavo", "Hana", "Ivo", "Jun")
_LAST = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kim", "Berg")
_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity")
_SOURCES = ("CRM_UI", "IMPORT", "API", "FORM", "INTEGRATION", "AUTOMATION_PLATFORM")


def _change(rng: random.Random, contact_id: int) -> tuple[str, str]:
    pick = rng.random()
    if pick < 0.35:
        return "lifecyclestage", rng.choice(_STAGES)
    if pick < 0.55:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return "email", f"{first.lower()}.{last.lower()}{contact_id % 97}@example.com"
    if pick < 0.7:
        return "phone", f"+1-555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
    if pick < 0.85:
        return "firstname", rng.choice(_FIRST)
    return "hs_lead_status", rng.choice(("NEW", "OPEN", "IN_PROGRESS", "CONNECTED"))


def contact_events(
    count: int,
    *,
    seed: int = 0,
    first_event_id: int | None = None,
    portal_id: int = PORTAL_ID,
    now_ms: int | None = None,
) -> list[dict[str, Any]]:
    """``count`` contact events as HubSpot's Webhooks API sends them: creations,
    property changes (lifecycle stage, e-mail, phone, name, lead status), a few
    deletions."""
    rng = random.Random(seed)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    event_id = first_event_id if first_event_id is not None else rng.randrange(10**8, 10**9)
    out: list[dict[str, Any]] = []
    for i in range(count):
        contact_id = rng.randrange(10**9, 10**11)
        kind = rng.random()
        event: dict[str, Any] = {
            "eventId": event_id + i,
            "subscriptionId": 1_234_000 + (0 if kind < 0.25 else 1 if kind < 0.95 else 2),
            "portalId": portal_id,
            "appId": APP_ID,
            "occurredAt": now - rng.randrange(0, 5_000),
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": contact_id,
            "changeSource": rng.choice(_SOURCES),
            "sourceId": f"userId:{rng.randrange(1_000, 99_999)}",
        }
        if kind < 0.25:
            event["changeFlag"] = "CREATED"
        elif kind < 0.95:
            name, value = _change(rng, contact_id)
            event.update(
                subscriptionType="contact.propertyChange", propertyName=name, propertyValue=value
            )
        else:
            event.update(subscriptionType="contact.deletion", changeFlag="DELETED")
        out.append(event)
    return out


def corrupt_signature(signature: str) -> str:
    """The same signature with one byte changed (still valid base64 of 32 bytes)."""
    first = signature[0]
    return ("B" if first == "A" else "A") + signature[1:]


def delivery_headers(
    url: str,
    body: bytes,
    secret: str,
    *,
    timestamp_ms: int | None = None,
    corrupt: bool = False,
) -> dict[str, str]:
    """The headers HubSpot sends with ``body`` POSTed to ``url``."""
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    request = SignedRequest("POST", url, {}, body)
    v3 = sign(HUBSPOT_V3, secret.encode(), request, stamp)
    v1 = hashlib.sha256(secret.encode() + body).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon",
        "X-HubSpot-Signature-v3": corrupt_signature(v3) if corrupt else v3,
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature": v1,
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Timeout-Millis": "10000",
    }


def send(
    url: str,
    events: list[dict[str, Any]],
    secret: str,
    *,
    client: httpx.Client | None = None,
    timestamp_ms: int | None = None,
    corrupt: bool = False,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST one signed delivery of ``events`` to ``url``."""
    body = json.dumps(events, separators=(",", ":")).encode()
    headers = delivery_headers(url, body, secret, timestamp_ms=timestamp_ms, corrupt=corrupt)
    if client is not None:
        return client.post(url, content=body, headers=headers, timeout=timeout)
    with httpx.Client() as own:
        return own.post(url, content=body, headers=headers, timeout=timeout)


@dataclass
class BurstResult:
    sent: int = 0
    events: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    bad_signatures: int = 0  # deliveries sent with a corrupted signature


def send_burst(
    url: str,
    secret: str,
    deliveries: int,
    *,
    events_per_delivery: int = 5,
    bad_every: int = 0,
    seed: int = 0,
) -> BurstResult:
    """``deliveries`` signed deliveries to ``url``; every ``bad_every``-th (0: none) with
    a corrupted signature. Returns the answers by status."""
    result = BurstResult()
    first = random.Random(seed).randrange(10**8, 10**9)
    with httpx.Client() as client:
        for n in range(deliveries):
            events = contact_events(
                events_per_delivery, seed=seed + n, first_event_id=first + n * 1000
            )
            bad = bool(bad_every) and (n + 1) % bad_every == 0
            answer = send(url, events, secret, client=client, corrupt=bad)
            result.sent += 1
            result.events += len(events)
            result.bad_signatures += bad
            result.statuses[answer.status_code] += 1
    return result
