"""The token vault's access log (``dlp_vault_reveals``) as a tamper-evident hash chain.

Every reveal attempt leaves one row (`hub.dlp.vault.TokenVault.reveal`). An auditor must
be able to tell that nobody edited a row (a "role-denied" turned into nothing worth
asking about, another reason, another actor) or deleted one from the middle of the log.
So each row carries the hash of the row before it, its own hash over that and its fields
(length-prefixed, as the audit trail's links: `projections.audit`), and an HMAC-SHA256 of
its hash under the audit key. Unlike the audit trail, which hashes events in log order,
this chain is written by whoever reveals, possibly at the same time: the unique index on
``prev_hash`` lets only one row follow a given row, so of two concurrent reveals the second
fails its insert and the caller retries in a new transaction
(`hub.dlp.vault.TokenVault.reveal`).

What a chain cannot tell: rows cut from its end (the last row's successor is simply
absent), or a log deleted whole. Rows written before the chain existed (revision 0007 added
it) have no link, and nothing in the database can tell them from rows whose links were
cleared — one UPDATE would make the whole log look that old. So the auditor says how many
there were (`verify_log`'s ``legacy_rows``, counted at that upgrade; 0 for a hub installed
at 0007 or later): exactly that many leading rows may lack links, and any other unlinked
row is a break.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from projections.audit import (
    GENESIS_HASH,
    canonical_time,
    length_prefixed,
    sign,
    signature_ok,
)
from projections.models import DlpVaultReveal

TAG = b"crm-hub-vault-reveal/v1"

LogBreak = Literal[
    "unlinked row", "prev link mismatch", "hash mismatch", "bad signature", "legacy rows missing"
]


@dataclass(frozen=True, slots=True)
class RevealRecord:
    """The fields of an access-log row that its hash covers (besides ``prev_hash``)."""

    token: str
    entity: str | None
    actor: str
    role: str
    reason: str
    outcome: str
    at: datetime


def record_hash(prev_hash: str, record: RevealRecord) -> str:
    """SHA-256 over the tag, the previous hash and every field, each length-prefixed (an
    absent entity is told apart from an empty one)."""
    entity = b"\x00" if record.entity is None else b"\x01" + length_prefixed(record.entity)
    data = b"".join(
        (
            TAG,
            length_prefixed(prev_hash),
            length_prefixed(record.token),
            entity,
            length_prefixed(record.actor),
            length_prefixed(record.role),
            length_prefixed(record.reason),
            length_prefixed(record.outcome),
            length_prefixed(canonical_time(record.at)),
        )
    )
    return hashlib.sha256(data).hexdigest()


def append(session: Session, record: RevealRecord, key: bytes) -> DlpVaultReveal:
    """Add `record` to the log after its last linked row, in `session`'s transaction. A
    concurrent reveal that links to the same row first makes the commit fail on the
    ``prev_hash`` index: the caller retries the whole transaction
    (`hub.dlp.vault.TokenVault.reveal`)."""
    if not key:
        raise ValueError("the access log needs the audit key")
    prev = session.scalar(
        select(DlpVaultReveal.hash)
        .where(DlpVaultReveal.hash.is_not(None))
        .order_by(DlpVaultReveal.seq.desc())
        .limit(1)
    )
    prev_hash = prev or GENESIS_HASH
    h = record_hash(prev_hash, record)
    row = DlpVaultReveal(**asdict(record), prev_hash=prev_hash, hash=h, signature=sign(key, h))
    session.add(row)
    return row


@dataclass(frozen=True, slots=True)
class LogCheck:
    ok: bool
    checked: int  # linked rows verified
    unlinked_before: int  # rows from before the chain (revision 0007), not verifiable
    broken_seq: int | None = None
    reason: LogBreak | None = None

    def describe(self) -> str:
        """One line for people."""
        before = (
            f" ({self.unlinked_before} older unlinked rows from before revision 0007)"
            if self.unlinked_before
            else ""
        )
        if self.ok:
            return f"{self.checked} {_attempts(self.checked)} verified{before}"
        if self.broken_seq is None:
            return f"{self.reason}: {self.unlinked_before} unlinked rows where more were declared"
        return (
            f"{self.reason} at access-log seq {self.broken_seq}; "
            f"{self.checked} {_attempts(self.checked)} verified before it{before}"
        )


def _attempts(n: int) -> str:
    return "reveal attempt" if n == 1 else "reveal attempts"


def verify_log(
    engine: Engine, key: bytes, *, legacy_rows: int = 0, yield_per: int = 10_000
) -> LogCheck:
    """Recompute the chain in ``seq`` order; the first broken row, if any. The first
    `legacy_rows` rows may have no links (written before revision 0007), no other may;
    fewer such rows than that is a break too (legacy rows deleted)."""
    r = DlpVaultReveal.__table__.c
    query = select(
        r.seq, r.token, r.entity, r.actor, r.role, r.reason, r.outcome, r.at,
        r.prev_hash, r.hash, r.signature,
    ).order_by(r.seq)  # fmt: skip
    checked = unlinked = 0
    prev_hash: str | None = None  # None: no linked row yet
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=yield_per).execute(query)
        try:
            for row in rows:
                reason: LogBreak | None = None
                if row.hash is None:
                    if prev_hash is None and unlinked < legacy_rows:
                        unlinked += 1
                        continue
                    reason = "unlinked row"
                else:
                    record = RevealRecord(
                        row.token, row.entity, row.actor, row.role, row.reason, row.outcome,
                        row.at,
                    )  # fmt: skip
                    if row.prev_hash != (prev_hash or GENESIS_HASH):
                        reason = "prev link mismatch"
                    elif record_hash(row.prev_hash, record) != row.hash:
                        reason = "hash mismatch"
                    elif row.signature is None or not signature_ok(key, row.hash, row.signature):
                        reason = "bad signature"
                if reason is not None:
                    return LogCheck(False, checked, unlinked, row.seq, reason)
                checked += 1
                prev_hash = row.hash
        finally:
            rows.close()
    if unlinked < legacy_rows:
        return LogCheck(False, checked, unlinked, None, "legacy rows missing")
    return LogCheck(True, checked, unlinked)


__all__ = [
    "LogCheck",
    "RevealRecord",
    "append",
    "record_hash",
    "verify_log",
]
