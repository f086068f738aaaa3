"""Webhook signatures: HubSpot's v3 and Zendesk's, checked in constant time, with the
timestamp held to a window and replays refused. Pure: no I/O, the clock is a parameter.

**HubSpot v3** (``X-HubSpot-Signature-v3``, ``X-HubSpot-Request-Timestamp``): base64 of
HMAC-SHA256, keyed with the app's client secret, over ``method + URI + body + timestamp``
(UTF-8), the timestamp in Unix milliseconds. The URI is the full URL HubSpot called
(scheme, host, path, query) with the characters HubSpot lists decoded — ``%3A`` ``:``,
``%2F`` ``/``, ``%3F`` ``?``, ``%40`` ``@``, ``%21`` ``!``, ``%24`` ``$``, ``%27`` ``'``,
``%28`` ``(``, ``%29`` ``)``, ``%2A`` ``*``, ``%2C`` ``,``, ``%3B`` ``;`` — and any other
escape left as sent. HubSpot says to refuse a timestamp older than 5 minutes.

**Zendesk** (``X-Zendesk-Webhook-Signature``, ``X-Zendesk-Webhook-Signature-Timestamp``):
base64 of HMAC-SHA256, keyed with the webhook's signing secret, over ``timestamp + body``;
the timestamp is ISO 8601 UTC (``2021-03-25T05:09:27Z``).

``verify`` refuses, each with a reason for the metrics: a missing header, a timestamp
that does not parse, one older than ``max_age`` (5 minutes) or more than ``max_future``
ahead, a signature that is not base64 of 32 bytes, and one that does not match.
``ReplayGuard`` then refuses a delivery whose signature was already accepted within the
window. No message here carries a signature, a secret or a body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.errors import HubError
from hub.webhooks.base import SignedRequest

__all__ = [
    "HUBSPOT_V3",
    "MAX_AGE",
    "MAX_FUTURE",
    "REASONS",
    "ZENDESK",
    "ReplayGuard",
    "SignatureRejected",
    "SignatureScheme",
    "Verified",
    "hubspot_signed_uri",
    "sign",
    "verify",
]

MAX_AGE = 300.0  # seconds: HubSpot's documented 5 minutes, used for both sources
MAX_FUTURE = 60.0  # seconds a timestamp may run ahead of this clock (skew)

REASONS = (
    "missing_signature",
    "missing_timestamp",
    "malformed_timestamp",
    "stale",
    "future",
    "malformed_signature",
    "bad_signature",
    "replay",
)


class SignatureRejected(HubError):
    """A delivery that is not accepted as authentic; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """How one source signs its deliveries."""

    name: str
    signature_header: str  # lower case
    timestamp_header: str  # lower case
    parse_timestamp: Callable[[str], float]  # -> Unix seconds; ValueError when malformed
    format_timestamp: Callable[[float], str]  # Unix seconds -> the header's text (senders)
    signed_message: Callable[[SignedRequest, str], bytes]  # (request, timestamp text)


# -- HubSpot v3 --------------------------------------------------------------------------

_HUBSPOT_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def hubspot_signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the URL (no fragment) with the listed escapes decoded."""
    url = url.split("#", 1)[0]
    if "%" not in url:
        return url
    return _ESCAPE.sub(lambda m: _HUBSPOT_DECODED.get(m.group(1).upper(), m.group(0)), url)


def _hubspot_timestamp(text: str) -> float:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise ValueError("not Unix milliseconds")
    return int(text) / 1000.0


def _hubspot_message(request: SignedRequest, timestamp: str) -> bytes:
    head = f"{request.method.upper()}{hubspot_signed_uri(request.url)}".encode()
    return head + request.body + timestamp.encode()


HUBSPOT_V3 = SignatureScheme(
    name="hubspot-v3",
    signature_header="x-hubspot-signature-v3",
    timestamp_header="x-hubspot-request-timestamp",
    parse_timestamp=_hubspot_timestamp,
    format_timestamp=lambda t: str(int(t * 1000)),
    signed_message=_hubspot_message,
)


# -- Zendesk -----------------------------------------------------------------------------


def _zendesk_timestamp(text: str) -> float:
    text = text.strip()
    if not text.isascii() or len(text) > 40:
        raise ValueError("not ISO 8601")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("ISO 8601 without a time zone")
    return parsed.timestamp()


def _zendesk_message(request: SignedRequest, timestamp: str) -> bytes:
    return timestamp.encode() + request.body


ZENDESK = SignatureScheme(
    name="zendesk",
    signature_header="x-zendesk-webhook-signature",
    timestamp_header="x-zendesk-webhook-signature-timestamp",
    parse_timestamp=_zendesk_timestamp,
    format_timestamp=lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    signed_message=_zendesk_message,
)


# -- signing and verifying ---------------------------------------------------------------


def _mac(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def sign(scheme: SignatureScheme, secret: bytes, request: SignedRequest, timestamp: str) -> str:
    """The signature header's value for ``request`` at ``timestamp`` (what the source
    sends; used by the simulators' senders and the tests)."""
    return base64.b64encode(_mac(secret, scheme.signed_message(request, timestamp))).decode()


@dataclass(frozen=True, slots=True)
class Verified:
    digest: bytes  # the 32 bytes of the accepted signature (the replay key)
    timestamp: float  # Unix seconds


def verify(
    scheme: SignatureScheme,
    secret: bytes,
    request: SignedRequest,
    *,
    now: float,
    max_age: float = MAX_AGE,
    max_future: float = MAX_FUTURE,
) -> Verified:
    """The verified signature of ``request``; ``SignatureRejected`` with the reason."""
    headers = request.headers
    given_text = headers.get(scheme.signature_header)
    if not given_text:
        raise SignatureRejected("missing_signature", "the signature header is missing")
    stamp = headers.get(scheme.timestamp_header)
    if not stamp:
        raise SignatureRejected("missing_timestamp", "the signature timestamp header is missing")
    try:
        timestamp = scheme.parse_timestamp(stamp)
    except (ValueError, OverflowError):
        raise SignatureRejected(
            "malformed_timestamp", "the signature timestamp is not in the documented format"
        ) from None
    if now - timestamp > max_age:
        raise SignatureRejected("stale", "the signature timestamp is older than allowed")
    if timestamp - now > max_future:
        raise SignatureRejected("future", "the signature timestamp is too far in the future")
    try:
        given = base64.b64decode(given_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    if len(given) != hashlib.sha256().digest_size:
        raise SignatureRejected("malformed_signature", "the signature is not base64 of 32 bytes")
    expected = _mac(secret, scheme.signed_message(request, stamp))
    if not hmac.compare_digest(expected, given):
        raise SignatureRejected("bad_signature", "the signature does not match")
    return Verified(given, timestamp)


class ReplayGuard:
    """The signatures of deliveries accepted within the window, per endpoint key.

    ``claim`` answers False for a signature already held: the delivery is a replay. An
    entry lives until its timestamp leaves the window (a copy after that is refused as
    stale), so the guard holds at most one window of accepted deliveries; only verified
    signatures are claimed, so nobody without the secret can fill it. ``release`` gives a
    claim back when the delivery was not accepted after all (the broker was away), so the
    sender's retry of the same request is not taken for a replay.

    One guard serves one process (one event loop: no locking). Across several API
    processes a replay can reach another process; its events then carry the same
    deterministic ids, and idempotent consumers drop the copies.
    """

    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, key: bytes, timestamp: float, now: float) -> bool:
        self._prune(now)
        if key in self._expiry:
            return False
        expiry = timestamp + self.max_age
        self._expiry[key] = expiry
        heapq.heappush(self._heap, (expiry, key))
        return True

    def release(self, key: bytes) -> None:
        self._expiry.pop(key, None)

    def _prune(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] < now:
            when, key = heapq.heappop(heap)
            if expiry.get(key) == when:
                del expiry[key]
