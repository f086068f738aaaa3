"""Webhook signatures, table-driven: what must be accepted and what must be refused (with
which reason), for HubSpot's v3 scheme and Zendesk's, plus the replay guard.

The expected signatures are computed here independently of ``hub.webhooks.signatures``:
HubSpot's with the reference implementation of HubSpot's own Python client
(``hubspot.utils.signature.Signature``), Zendesk's with the formula Zendesk documents,
``base64(HMACSHA256(TIMESTAMP + BODY))``, written out with the stdlib."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from hubspot.utils.signature import Signature as hubspot_signature

from hub.webhooks.base import SignedRequest
from hub.webhooks.signatures import (
    HUBSPOT_V3,
    ZENDESK,
    ReplayGuard,
    SignatureRejected,
    SignatureScheme,
    Verified,
    hubspot_signed_uri,
    sign,
    verify,
)

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
NOW = 1_764_504_000.0  # 2025-11-30T12:00:00Z
URL = "https://hub.example.com/webhooks/hubspot"
BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1764503990000,'
    b'"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,'
    b'"propertyName":"email","propertyValue":"ana@example.com","changeSource":"CRM"}]'
)
ZD_BODY = (
    b'{"type":"zen:event-type:ticket.status_changed","id":"cbe4028c","subject":"zen:ticket:5"}'
)


def hubspot_reference(
    method: str, uri: str, body: bytes, timestamp: str, secret: str = SECRET
) -> str:
    """HubSpot's own client computes the v3 signature over the (already decoded) URI."""
    return str(
        hubspot_signature.get_signature(
            secret, body.decode(), "v3", http_uri=uri, http_method=method, timestamp=timestamp
        )
    )


def zendesk_reference(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def ms(t: float) -> str:
    return str(int(t * 1000))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Case:
    id: str
    scheme: SignatureScheme
    method: str = "POST"
    url: str = URL
    body: bytes = BODY
    headers: dict[str, str] = field(default_factory=dict)
    secret: str = SECRET
    reason: str | None = None  # None: must be accepted


def hubspot_case(
    id: str,
    *,
    at: float = NOW,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    signed_uri: str | None = None,
    signed_body: bytes | None = None,
    signed_secret: str = SECRET,
    stamp: str | None = None,
    mutate: Callable[[dict[str, str]], None] | None = None,
    reason: str | None = None,
) -> Case:
    stamp = stamp if stamp is not None else ms(at)
    signature = hubspot_reference(
        method,
        signed_uri if signed_uri is not None else url,
        signed_body if signed_body is not None else body,
        stamp,
        signed_secret,
    )
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": stamp}
    if mutate is not None:
        mutate(headers)
    return Case(id, HUBSPOT_V3, method, url, body, headers, reason=reason)


def zendesk_case(
    id: str,
    *,
    at: float = NOW,
    body: bytes = ZD_BODY,
    signed_body: bytes | None = None,
    signed_secret: str = SECRET,
    stamp: str | None = None,
    mutate: Callable[[dict[str, str]], None] | None = None,
    reason: str | None = None,
) -> Case:
    stamp = stamp if stamp is not None else iso(at)
    signature = zendesk_reference(
        signed_body if signed_body is not None else body, stamp, signed_secret
    )
    headers = {
        "x-zendesk-webhook-signature": signature,
        "x-zendesk-webhook-signature-timestamp": stamp,
    }
    if mutate is not None:
        mutate(headers)
    return Case(id, ZENDESK, "POST", "", body, headers, reason=reason)


def _set(name: str, value: str) -> Callable[[dict[str, str]], None]:
    def mutate(headers: dict[str, str]) -> None:
        headers[name] = value

    return mutate


def _drop(name: str) -> Callable[[dict[str, str]], None]:
    def mutate(headers: dict[str, str]) -> None:
        del headers[name]

    return mutate


def _flip_byte(body: bytes) -> bytes:
    return body[:40] + bytes([body[40] ^ 0x01]) + body[41:]


QUERY_URL = "https://hub.example.com/webhooks/hubspot?portal=62515&from=a%3Ab%2Fc%40d%21&q=%20x"
QUERY_SIGNED = "https://hub.example.com/webhooks/hubspot?portal=62515&from=a:b/c@d!&q=%20x"

MUST_ACCEPT = [
    hubspot_case("hubspot: signed now"),
    hubspot_case("hubspot: signed 4 minutes 59 s ago", at=NOW - 299),
    hubspot_case("hubspot: 30 s ahead of our clock (skew)", at=NOW + 30),
    hubspot_case(
        "hubspot: listed escapes decoded before signing", url=QUERY_URL, signed_uri=QUERY_SIGNED
    ),
    hubspot_case(
        "hubspot: lower-case escapes too", url=QUERY_URL.lower(), signed_uri=QUERY_SIGNED.lower()
    ),
    hubspot_case("hubspot: empty body", body=b""),
    hubspot_case(
        "hubspot: non-ASCII body (UTF-8)",
        body='[{"propertyValue":"Chloé Müller"}]'.encode(),
    ),
    zendesk_case("zendesk: signed now"),
    zendesk_case("zendesk: signed 4 minutes 59 s ago", at=NOW - 299),
    zendesk_case("zendesk: empty body (a GET/DELETE webhook)", body=b""),
    zendesk_case(
        "zendesk: timestamp with fraction and offset",
        stamp="2025-11-30T13:59:30.5+02:00",
    ),
]

MUST_REJECT = [
    hubspot_case("hubspot: wrong secret", signed_secret="zzzzzzzz", reason="bad_signature"),
    hubspot_case(
        "hubspot: body changed by one byte", signed_body=_flip_byte(BODY), reason="bad_signature"
    ),
    hubspot_case(
        "hubspot: another URL",
        signed_uri="https://hub.example.com/webhooks/other",
        reason="bad_signature",
    ),
    hubspot_case(
        "hubspot: escapes not decoded by the signer", url=QUERY_URL, reason="bad_signature"
    ),
    hubspot_case(
        "hubspot: signed for GET, sent as POST",
        mutate=_set("x-hubspot-signature-v3", hubspot_reference("GET", URL, BODY, ms(NOW))),
        reason="bad_signature",
    ),
    hubspot_case(
        "hubspot: timestamp header changed after signing",
        mutate=_set("x-hubspot-request-timestamp", ms(NOW - 1)),
        reason="bad_signature",
    ),
    hubspot_case("hubspot: stale (5 min 1 s)", at=NOW - 301, reason="stale"),
    hubspot_case("hubspot: stale (a day)", at=NOW - 86_400, reason="stale"),
    hubspot_case("hubspot: future (2 min ahead)", at=NOW + 120, reason="future"),
    hubspot_case(
        "hubspot: missing signature",
        mutate=_drop("x-hubspot-signature-v3"),
        reason="missing_signature",
    ),
    hubspot_case(
        "hubspot: empty signature",
        mutate=_set("x-hubspot-signature-v3", ""),
        reason="missing_signature",
    ),
    hubspot_case(
        "hubspot: missing timestamp",
        mutate=_drop("x-hubspot-request-timestamp"),
        reason="missing_timestamp",
    ),
    hubspot_case(
        "hubspot: timestamp in seconds is refused as stale", stamp=str(int(NOW)), reason="stale"
    ),
    hubspot_case(
        "hubspot: timestamp not a number",
        stamp="yesterday",
        reason="malformed_timestamp",
    ),
    hubspot_case("hubspot: timestamp in ISO 8601", stamp=iso(NOW), reason="malformed_timestamp"),
    hubspot_case("hubspot: negative timestamp", stamp="-1", reason="malformed_timestamp"),
    hubspot_case(
        "hubspot: malformed base64",
        mutate=_set("x-hubspot-signature-v3", "not base64 !!"),
        reason="malformed_signature",
    ),
    hubspot_case(
        "hubspot: base64 of 16 bytes",
        mutate=_set("x-hubspot-signature-v3", base64.b64encode(b"0" * 16).decode()),
        reason="malformed_signature",
    ),
    hubspot_case(
        "hubspot: hex digest instead of base64",
        mutate=_set("x-hubspot-signature-v3", hashlib.sha256(b"x").hexdigest()),
        reason="malformed_signature",
    ),
    hubspot_case(
        "hubspot: 'sha256=' prefix",
        mutate=lambda h: h.update(
            {"x-hubspot-signature-v3": "sha256=" + h["x-hubspot-signature-v3"]}
        ),
        reason="malformed_signature",
    ),
    zendesk_case("zendesk: wrong secret", signed_secret="zzzzzzzz", reason="bad_signature"),
    zendesk_case(
        "zendesk: body changed by one byte",
        signed_body=_flip_byte(ZD_BODY),
        reason="bad_signature",
    ),
    zendesk_case(
        "zendesk: timestamp header changed after signing",
        mutate=_set("x-zendesk-webhook-signature-timestamp", iso(NOW - 1)),
        reason="bad_signature",
    ),
    zendesk_case(
        "zendesk: HubSpot's v3 over the same body",
        mutate=_set(
            "x-zendesk-webhook-signature", hubspot_reference("POST", URL, ZD_BODY, iso(NOW))
        ),
        reason="bad_signature",
    ),
    zendesk_case("zendesk: stale (5 min 1 s)", at=NOW - 301, reason="stale"),
    zendesk_case("zendesk: future (2 min ahead)", at=NOW + 120, reason="future"),
    zendesk_case(
        "zendesk: missing signature",
        mutate=_drop("x-zendesk-webhook-signature"),
        reason="missing_signature",
    ),
    zendesk_case(
        "zendesk: missing timestamp",
        mutate=_drop("x-zendesk-webhook-signature-timestamp"),
        reason="missing_timestamp",
    ),
    zendesk_case(
        "zendesk: timestamp without a zone",
        stamp="2025-11-30T12:00:00",
        reason="malformed_timestamp",
    ),
    zendesk_case("zendesk: timestamp in ms", stamp=ms(NOW), reason="malformed_timestamp"),
    zendesk_case(
        "zendesk: malformed base64",
        mutate=_set("x-zendesk-webhook-signature", "%%%%"),
        reason="malformed_signature",
    ),
]


def _request(case: Case) -> SignedRequest:
    return SignedRequest(case.method, case.url, case.headers, case.body)


@pytest.mark.parametrize("case", MUST_ACCEPT, ids=lambda c: c.id)
def test_must_accept(case: Case) -> None:
    verified = verify(case.scheme, case.secret.encode(), _request(case), now=NOW)
    assert isinstance(verified, Verified)
    signature = case.headers[case.scheme.signature_header]
    assert verified.digest == base64.b64decode(signature)
    assert (
        abs(
            verified.timestamp
            - case.scheme.parse_timestamp(case.headers[case.scheme.timestamp_header])
        )
        < 1e-9
    )


@pytest.mark.parametrize("case", MUST_REJECT, ids=lambda c: c.id)
def test_must_reject(case: Case) -> None:
    with pytest.raises(SignatureRejected) as caught:
        verify(case.scheme, case.secret.encode(), _request(case), now=NOW)
    assert caught.value.reason == case.reason
    # The message never carries the signature, the secret or the body.
    text = str(caught.value)
    for secretish in (case.secret, *case.headers.values(), case.body.decode(errors="replace")):
        if len(secretish) >= 8:
            assert secretish not in text


def test_every_case_differs_from_an_accepted_one_only_where_it_says() -> None:
    """A guard on the table itself: the reject cases use the same secret and clock as the
    accepted ones, so a reject that passed would be a real hole, not a typo in the table."""
    assert {c.secret for c in MUST_REJECT} == {SECRET}


@pytest.mark.parametrize(
    ("url", "signed"),
    [
        ("https://h.example.com/webhooks/x", "https://h.example.com/webhooks/x"),
        ("https://h.example.com/w?a=%3A%2F%3F%40%21%24", "https://h.example.com/w?a=:/?@!$"),
        ("https://h.example.com/w?a=%27%28%29%2A%2C%3B", "https://h.example.com/w?a='()*,;"),
        ("https://h.example.com/w?a=%2a%2c%3b", "https://h.example.com/w?a=*,;"),
        # escapes HubSpot does not list stay as sent
        ("https://h.example.com/w?a=%20%2B%26%3D%25", "https://h.example.com/w?a=%20%2B%26%3D%25"),
        ("https://h.example.com/w?a=1#frag", "https://h.example.com/w?a=1"),
    ],
)
def test_hubspot_signed_uri_decodes_exactly_the_listed_escapes(url: str, signed: str) -> None:
    assert hubspot_signed_uri(url) == signed


@pytest.mark.parametrize("scheme", [HUBSPOT_V3, ZENDESK], ids=lambda s: s.name)
def test_sign_is_what_verify_accepts_and_matches_the_reference(scheme: SignatureScheme) -> None:
    stamp = scheme.format_timestamp(NOW)
    request = SignedRequest("POST", URL, {}, BODY)
    signature = sign(scheme, SECRET.encode(), request, stamp)
    reference = (
        hubspot_reference("POST", URL, BODY, stamp)
        if scheme is HUBSPOT_V3
        else zendesk_reference(BODY, stamp)
    )
    assert signature == reference
    headers = {scheme.signature_header: signature, scheme.timestamp_header: stamp}
    verify(scheme, SECRET.encode(), replace(request, headers=headers), now=NOW)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digests are compared with ``hmac.compare_digest`` (a plain ``==`` would leak
    how many leading bytes match): every verdict, good or bad, goes through it."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("hub.webhooks.signatures.hmac.compare_digest", spy)
    good, bad = MUST_ACCEPT[0], MUST_REJECT[0]
    verify(good.scheme, SECRET.encode(), _request(good), now=NOW)
    with pytest.raises(SignatureRejected):
        verify(bad.scheme, SECRET.encode(), _request(bad), now=NOW)
    assert len(calls) == 2
    assert all(len(a) == len(b) == 32 for a, b in calls)


# -- replays ------------------------------------------------------------------------------


def test_a_signature_is_accepted_once_within_the_window() -> None:
    guard = ReplayGuard(max_age=300)
    assert guard.claim(b"k1", NOW, NOW)
    assert not guard.claim(b"k1", NOW, NOW + 1)  # the same delivery again: a replay
    assert not guard.claim(b"k1", NOW, NOW + 299)
    assert guard.claim(b"k2", NOW, NOW + 1)  # another delivery


def test_a_released_claim_can_be_claimed_again() -> None:
    """A delivery that was not accepted (broker away) is retried by its sender with the
    same signature; that retry is not a replay."""
    guard = ReplayGuard(max_age=300)
    assert guard.claim(b"k", NOW, NOW)
    guard.release(b"k")
    assert guard.claim(b"k", NOW, NOW + 2)
    assert not guard.claim(b"k", NOW, NOW + 3)


def test_entries_leave_with_their_window_and_memory_stays_bounded() -> None:
    guard = ReplayGuard(max_age=300)
    for i in range(1000):
        guard.claim(i.to_bytes(4, "big"), NOW + i * 0.1, NOW + i * 0.1)
    assert len(guard) == 1000
    guard.claim(b"late", NOW + 500, NOW + 500)  # every earlier timestamp left the window
    assert len(guard) == 1
    # a copy that old would be refused as stale by verify() anyway
    assert guard.claim((0).to_bytes(4, "big"), NOW, NOW + 500)


def test_a_replayed_delivery_is_refused_end_to_end() -> None:
    """verify + guard as the receiver chains them: the same signed request twice."""
    guard = ReplayGuard()
    case = MUST_ACCEPT[0]
    outcomes = []
    for now in (NOW, NOW + 5):
        verified = verify(case.scheme, SECRET.encode(), _request(case), now=now)
        outcomes.append(guard.claim(b"hubspot\x00" + verified.digest, verified.timestamp, now))
    assert outcomes == [True, False]
