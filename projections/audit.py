"""The tamper-evident audit trail: a hash chain per (topic, partition), ordered by offset,
each link signed with HMAC-SHA256.

A link's hash covers the previous link's hash and the event's position, identity and
payload digest, in a length-prefixed encoding that cannot be read two ways. Because a chain
only depends on the events of one partition in offset order, rebuilding the trail from the
log gives byte-identical hashes whatever the batch split or the interleaving of partitions.

The hash and signing functions are pure (the key is passed in); ``verify_chain`` streams the
table and reports the first broken link. ``LinkSigner`` and ``hash_link`` are the same
functions shaped for a hot loop (the projection hashes every event it applies): the key's
HMAC pads are hashed once, and a chain's topic and partition are encoded once.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select

from projections.models import AuditEntry

GENESIS_HASH = "0" * 64
ENCODING_TAG = b"crm-hub-audit-link/v1"

BreakKind = Literal["prev link mismatch", "hash mismatch", "bad signature"]


@dataclass(frozen=True, slots=True)
class AuditLink:
    """The fields of an audit row that its hash covers (besides ``prev_hash``)."""

    topic: str
    partition: int
    offset: int
    event_id: str
    event_type: str
    subject: str
    event_time: datetime
    payload_digest: str


def canonical_time(t: datetime) -> str:
    """UTC, always with microseconds: the same instant gives the same text, whether it comes
    from a header, SQLite (naive, stored as UTC) or PostgreSQL (aware)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def utc(t: datetime) -> datetime:
    """``t`` as an aware UTC datetime (naive values are taken as UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


_U32 = struct.Struct(">I").pack


def length_prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U32(len(data)) + data


def chain_prefix(topic: str, partition: int) -> bytes:
    """The encoded topic and partition: the same for every link of one chain."""
    return length_prefixed(topic) + length_prefixed(str(partition))


def encode_link(
    prev_hash: str,
    prefix: bytes,
    offset: int,
    event_id: str,
    event_type: str,
    subject: str,
    event_time: str,
    payload_digest: str,
) -> bytes:
    """``canonical_encoding`` from its parts: ``prefix`` from ``chain_prefix`` and the
    event time already in ``canonical_time`` form."""
    return b"".join(
        (
            ENCODING_TAG,
            length_prefixed(prev_hash),
            prefix,
            length_prefixed(str(offset)),
            length_prefixed(event_id),
            length_prefixed(event_type),
            length_prefixed(subject),
            length_prefixed(event_time),
            length_prefixed(payload_digest),
        )
    )


def canonical_encoding(prev_hash: str, link: AuditLink) -> bytes:
    """Tag, then every field as a 4-byte big-endian length and its UTF-8 bytes."""
    return encode_link(
        prev_hash,
        chain_prefix(link.topic, link.partition),
        link.offset,
        link.event_id,
        link.event_type,
        link.subject,
        canonical_time(link.event_time),
        link.payload_digest,
    )


def hash_link(
    prev_hash: str,
    prefix: bytes,
    offset: int,
    event_id: str,
    event_type: str,
    subject: str,
    event_time: str,
    payload_digest: str,
) -> str:
    """``link_hash`` from the parts ``encode_link`` takes."""
    data = encode_link(
        prev_hash, prefix, offset, event_id, event_type, subject, event_time, payload_digest
    )
    return hashlib.sha256(data).hexdigest()


def link_hash(prev_hash: str, link: AuditLink) -> str:
    return hashlib.sha256(canonical_encoding(prev_hash, link)).hexdigest()


def sign(key: bytes, hash_hex: str) -> str:
    return hmac.digest(key, hash_hex.encode("ascii"), "sha256").hex()


def signature_ok(key: bytes, hash_hex: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, hash_hex), signature)


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class LinkSigner:
    """``sign(key, h)`` for many hashes: HMAC-SHA256 (RFC 2104) with the key's inner and
    outer pads hashed once. Also cheaper for the other threads of the process than
    ``hmac.digest``, which releases and re-takes the GIL on every call."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the audit key must not be empty")
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def sign(self, hash_hex: str) -> str:
        inner = self._inner.copy()
        inner.update(hash_hex.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainedLink:
    link: AuditLink
    prev_hash: str
    hash: str
    signature: str


def chain(
    links: Iterable[AuditLink], key: bytes, prev_hash: str = GENESIS_HASH
) -> list[ChainedLink]:
    """Hash and sign ``links`` (one partition, in offset order) after ``prev_hash``."""
    out: list[ChainedLink] = []
    for link in links:
        h = link_hash(prev_hash, link)
        out.append(ChainedLink(link, prev_hash, h, sign(key, h)))
        prev_hash = h
    return out


@dataclass(frozen=True, slots=True)
class BrokenLink:
    topic: str
    partition: int
    offset: int
    seq: int
    event_id: str
    reason: BreakKind


@dataclass(frozen=True, slots=True)
class OffsetGap:
    """Offsets missing between two links of a chain: a warning, not a failure (an
    undecodable message is quarantined, not audited; a duplicate event id is audited once)."""

    topic: str
    partition: int
    after_offset: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    chains: int
    broken: BrokenLink | None = None
    gaps: tuple[OffsetGap, ...] = ()
    gap_count: int = 0

    def describe(self) -> str:
        """One line for people: the first broken link, or what was verified."""
        if self.broken is None:
            return f"{self.checked} entries in {self.chains} chains verified"
        b = self.broken
        return (
            f"{b.reason} at {b.topic}[{b.partition}]@{b.offset} "
            f"(audit seq {b.seq}, event {b.event_id}); {self.checked} entries checked"
        )


def verify_chain(
    engine: Engine, audit_key: bytes, *, yield_per: int = 10_000, max_gaps: int = 100
) -> VerifyResult:
    """Recompute every chain; return ok or the first broken link (in topic, partition,
    offset order). Rows are streamed, so memory stays flat on millions of entries."""
    a = AuditEntry.__table__.c
    query = select(
        a.seq,
        a.topic,
        a.partition,
        a.offset,
        a.event_id,
        a.event_type,
        a.subject,
        a.event_time,
        a.payload_digest,
        a.prev_hash,
        a.hash,
        a.signature,
    ).order_by(a.topic, a.partition, a.offset)
    checked = chains = gap_count = 0
    gaps: list[OffsetGap] = []
    current: tuple[str, int] | None = None
    prev_hash = GENESIS_HASH
    prev_offset = -1
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=yield_per).execute(query)
        for row in rows:
            if (row.topic, row.partition) != current:
                current = (row.topic, row.partition)
                chains += 1
                prev_hash = GENESIS_HASH
            elif row.offset != prev_offset + 1:
                gap_count += 1
                if len(gaps) < max_gaps:
                    gaps.append(OffsetGap(row.topic, row.partition, prev_offset, row.offset))
            reason: BreakKind | None = None
            link = AuditLink(
                topic=row.topic,
                partition=row.partition,
                offset=row.offset,
                event_id=row.event_id,
                event_type=row.event_type,
                subject=row.subject,
                event_time=row.event_time,
                payload_digest=row.payload_digest,
            )
            if row.prev_hash != prev_hash:
                reason = "prev link mismatch"
            elif link_hash(row.prev_hash, link) != row.hash:
                reason = "hash mismatch"
            elif not signature_ok(audit_key, row.hash, row.signature):
                reason = "bad signature"
            if reason is not None:
                rows.close()
                broken = BrokenLink(
                    row.topic, row.partition, row.offset, row.seq, row.event_id, reason
                )
                return VerifyResult(False, checked, chains, broken, tuple(gaps), gap_count)
            checked += 1
            prev_hash = row.hash
            prev_offset = row.offset
    return VerifyResult(True, checked, chains, None, tuple(gaps), gap_count)
