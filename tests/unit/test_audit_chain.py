"""The audit trail's hash and signature functions: pure, no database."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from projections.audit import (
    ENCODING_TAG,
    GENESIS_HASH,
    AuditLink,
    LinkSigner,
    canonical_encoding,
    canonical_time,
    chain,
    chain_prefix,
    encode_link,
    hash_link,
    link_hash,
    sign,
    signature_ok,
)

KEY = b"unit-test-audit-key"
LINK = AuditLink(
    topic="crm.clean.sales.leads.v1",
    partition=2,
    offset=41,
    event_id="3f1c0e9e-8f0a-5d2b-9a57-0f5f3f6f9d11",
    event_type="crm.sales.lead.validated.v1",
    subject="L-1001",
    event_time=datetime(2024, 5, 17, 9, 30, 0, 123456, tzinfo=UTC),
    payload_digest=hashlib.sha256(b"value").hexdigest(),
)


def test_hash_is_deterministic_sha256_hex() -> None:
    h = link_hash(GENESIS_HASH, LINK)
    assert h == link_hash(GENESIS_HASH, dataclasses.replace(LINK))
    assert len(h) == 64
    assert int(h, 16) >= 0
    assert h == hashlib.sha256(canonical_encoding(GENESIS_HASH, LINK)).hexdigest()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic", "crm.quarantine.v1"),
        ("partition", 3),
        ("offset", 42),
        ("event_id", "3f1c0e9e-8f0a-5d2b-9a57-0f5f3f6f9d12"),
        ("event_type", "crm.sales.lead.validated.v2"),
        ("subject", "L-1002"),
        ("event_time", datetime(2024, 5, 17, 9, 30, 0, 123457, tzinfo=UTC)),
        ("payload_digest", hashlib.sha256(b"other").hexdigest()),
    ],
)
def test_any_field_change_changes_the_hash(field: str, value: Any) -> None:
    changed = dataclasses.replace(LINK, **{field: value})
    assert link_hash(GENESIS_HASH, changed) != link_hash(GENESIS_HASH, LINK)


def test_prev_hash_changes_the_hash() -> None:
    assert link_hash("1" * 64, LINK) != link_hash(GENESIS_HASH, LINK)


def test_encoding_is_unambiguous_when_text_moves_between_fields() -> None:
    a = dataclasses.replace(LINK, event_type="ab", subject="c")
    b = dataclasses.replace(LINK, event_type="a", subject="bc")
    assert canonical_encoding(GENESIS_HASH, a) != canonical_encoding(GENESIS_HASH, b)
    assert link_hash(GENESIS_HASH, a) != link_hash(GENESIS_HASH, b)


def test_encoding_is_length_prefixed_fields_after_a_tag() -> None:
    data = canonical_encoding(GENESIS_HASH, LINK)
    assert data.startswith(ENCODING_TAG)
    rest = data[len(ENCODING_TAG) :]
    fields = []
    while rest:
        n = int.from_bytes(rest[:4], "big")
        fields.append(rest[4 : 4 + n].decode())
        rest = rest[4 + n :]
    assert fields == [
        GENESIS_HASH,
        LINK.topic,
        "2",
        "41",
        LINK.event_id,
        LINK.event_type,
        LINK.subject,
        "2024-05-17T09:30:00.123456+00:00",
        LINK.payload_digest,
    ]


@pytest.mark.parametrize(
    "when",
    [
        datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
        datetime(2024, 5, 17, 9, 30),  # naive: taken as UTC (SQLite gives these back)
        datetime(2024, 5, 17, 11, 30, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_same_instant_gives_same_canonical_time(when: datetime) -> None:
    assert canonical_time(when) == "2024-05-17T09:30:00.000000+00:00"


def test_signature_is_hmac_sha256_of_the_hash() -> None:
    h = link_hash(GENESIS_HASH, LINK)
    expected = hmac.new(KEY, h.encode(), hashlib.sha256).hexdigest()
    assert sign(KEY, h) == expected
    assert signature_ok(KEY, h, expected)
    assert not signature_ok(b"another key", h, expected)
    assert not signature_ok(KEY, link_hash("1" * 64, LINK), expected)


def test_chain_links_each_hash_to_the_previous_one() -> None:
    links = [dataclasses.replace(LINK, offset=o, event_id=f"e{o}") for o in range(5)]
    chained = chain(links, KEY)
    assert chained[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(chained):
        assert after.prev_hash == before.hash
    for c in chained:
        assert c.hash == link_hash(c.prev_hash, c.link)
        assert signature_ok(KEY, c.hash, c.signature)
    # Continuing a chain from its head gives the same links as hashing it in one go.
    tail = chain(links[3:], KEY, prev_hash=chained[2].hash)
    assert [c.hash for c in tail] == [c.hash for c in chained[3:]]


def test_changing_an_early_link_changes_every_later_hash() -> None:
    links = [dataclasses.replace(LINK, offset=o, event_id=f"e{o}") for o in range(4)]
    original = chain(links, KEY)
    links[1] = dataclasses.replace(links[1], subject="L-9999")
    tampered = chain(links, KEY)
    assert tampered[0].hash == original[0].hash
    assert all(t.hash != o.hash for t, o in zip(tampered[1:], original[1:], strict=True))


@pytest.mark.parametrize(
    "key",
    [b"k", KEY, b"x" * 64, b"y" * 65, bytes(range(256)) * 2],
    ids=["1 byte", "typical", "one block", "over a block", "512 bytes"],
)
def test_link_signer_is_hmac_sha256(key: bytes) -> None:
    signer = LinkSigner(key)
    for prev in (GENESIS_HASH, "1" * 64):
        h = link_hash(prev, LINK)
        assert signer.sign(h) == sign(key, h) == hmac.new(key, h.encode(), "sha256").hexdigest()


def test_link_signer_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        LinkSigner(b"")


def test_hash_link_from_parts_is_link_hash() -> None:
    """The store hashes from parts (a chain's topic and partition encoded once)."""
    prefix = chain_prefix(LINK.topic, LINK.partition)
    parts = (
        LINK.offset,
        LINK.event_id,
        LINK.event_type,
        LINK.subject,
        canonical_time(LINK.event_time),
        LINK.payload_digest,
    )
    for prev in (GENESIS_HASH, link_hash(GENESIS_HASH, LINK)):
        assert encode_link(prev, prefix, *parts) == canonical_encoding(prev, LINK)
        assert hash_link(prev, prefix, *parts) == link_hash(prev, LINK)
    unicode = dataclasses.replace(LINK, subject="Zoë-Łukasz-東京")
    assert hash_link(
        GENESIS_HASH,
        prefix,
        unicode.offset,
        unicode.event_id,
        unicode.event_type,
        unicode.subject,
        canonical_time(unicode.event_time),
        unicode.payload_digest,
    ) == link_hash(GENESIS_HASH, unicode)
