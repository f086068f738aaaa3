"""The token vault on real databases (SQLite, and PostgreSQL where CI sets
HUB_TEST_DATABASE_URL): the projection keeps one sealed value per token; a reveal gives
the value back only to a role the policy names, holding the private key; every attempt
is in the access log, which never holds the value."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from hub.dlp.operators import KeyRing, TokenizeParams, tokenize
from hub.dlp.vault import (
    RevealDenied,
    TokenVault,
    UnknownToken,
    VaultPrivateKey,
    seal_value,
)
from hub.errors import DataQualityError, FatalError
from hub.events import EventMeta
from hub.topics import DLP_VAULT
from projections.access_log import verify_log
from projections.audit import GENESIS_HASH
from projections.db import make_engine
from projections.models import DlpVaultEntry, DlpVaultReveal
from projections.store import HR_EMPLOYEE_ORIGIN, ConsumedEvent, ProjectionStore, Tombstone
from tests.integration.test_projection_store import BACKENDS, erasure_event, fresh_database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SSN = "078-05-1120"
KEYS = KeyRing({"default": b"k" * 32})
TOKEN = tokenize(KEYS, "US_SSN", SSN, TokenizeParams())
LOG_KEY = b"audit-key-for-the-access-log"


@pytest.fixture(params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, database_urls: list[str], tmp_path: Path
) -> Iterator[Engine]:
    with fresh_database(request.param, database_urls, tmp_path) as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


@pytest.fixture(scope="module")
def private() -> VaultPrivateKey:
    return VaultPrivateKey.generate()


def _outcomes(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return [
            (r.outcome, r.role, r.entity)
            for r in conn.execute(select(DlpVaultReveal).order_by(DlpVaultReveal.seq))
        ]


def vault_event(
    private: VaultPrivateKey,
    offset: int,
    event_id: str,
    value: str = SSN,
    *,
    source: str = "/crm-hub/processors/sales",
    subject: str = "L-1",
) -> ConsumedEvent:
    """A message of crm.dlp.vault.v1 as the DLP stage writes it (sealed per message)."""
    token = tokenize(KEYS, "US_SSN", value, TokenizeParams())
    sealed_at = T0 + timedelta(seconds=offset)
    entry: dict[str, Any] = {
        "token": token,
        "entity": "US_SSN",
        "sealed": seal_value(private.public, token, "US_SSN", value),
        "key_id": private.public.key_id,
        "event_id": event_id,
        "sealed_at": sealed_at,
    }
    meta = EventMeta(
        id=f"vault-{event_id}",
        source=source,
        type="crm.dlp.vault-entry.v1",
        subject=subject,
        time=sealed_at,
    )
    return ConsumedEvent(DLP_VAULT, 0, offset, token, meta, entry, b"v%d" % offset)


def _vault(engine: Engine, private: VaultPrivateKey) -> TokenVault:
    """The vault as the projection leaves it after the stage vaulted TOKEN's value."""
    ProjectionStore(engine, audit_key=b"audit").apply([vault_event(private, 0, "ev-1")])
    return TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY)


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(DlpVaultEntry.__table__))]


def test_the_projection_keeps_a_tokens_latest_entry_and_a_rebuild_equals_it(
    engine: Engine, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """The same value in three events (two in one batch, one later): one row, the latest
    entry's — the one the compacted topic keeps, so a vault rebuilt from the compacted
    topic equals the live one. An older entry re-delivered after it changes nothing."""
    events = [vault_event(private, n, f"ev-{n + 1}") for n in range(3)]
    store = ProjectionStore(engine, audit_key=b"audit")
    first = store.apply(events[:2])
    later = store.apply(events[2:])
    store.apply([events[0]])  # an old entry again (its event id is new to nobody: skipped)
    assert (first.vaulted, later.vaulted) == (1, 1)
    (row,) = _rows(engine)
    with engine.connect() as conn:
        entry = conn.execute(select(DlpVaultEntry)).one()
    assert (entry.token, entry.event_id, entry.source_offset) == (TOKEN, "ev-3", 2)
    assert entry.sealed == events[2].value["sealed"]
    assert SSN.encode() not in entry.sealed
    assert store.counts()["vault_tokens"] == 1
    assert store.counts()["audit_entries"] == 3
    revealed = TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY).reveal(
        TOKEN, private, actor="ana", role="privacy-officer", reason="check", now=T0
    )
    assert revealed == SSN
    # rebuilt from the compacted topic (only the last entry of the token is left)
    backend = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    with fresh_database(backend, database_urls, tmp_path / "rebuild") as url:
        rebuilt = make_engine(url)
        ProjectionStore(rebuilt, audit_key=b"audit").apply(events[2:])
        assert _rows(rebuilt) == [row]
        rebuilt.dispose()


def test_an_older_entry_delivered_late_does_not_replace_a_newer_one(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """At-least-once delivery: an entry from an earlier offset, with an event id the vault
    has not seen, arriving after a later one, loses to it."""
    older, newer = vault_event(private, 4, "ev-old"), vault_event(private, 9, "ev-new")
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([newer])
    store.apply([older])
    with engine.connect() as conn:
        entry = conn.execute(select(DlpVaultEntry)).one()
    assert (entry.event_id, entry.source_offset) == ("ev-new", 9)


def test_an_allowed_role_with_the_private_key_gets_the_value_and_is_logged(
    engine: Engine, private: VaultPrivateKey
) -> None:
    vault = _vault(engine, private)
    value = vault.reveal(
        TOKEN, private, actor="ana", role="privacy-officer", reason="DSAR 1187", now=T0
    )
    assert value == SSN
    assert _outcomes(engine) == [("revealed", "privacy-officer", "US_SSN")]
    with engine.connect() as conn:
        row = conn.execute(select(DlpVaultReveal)).one()
    assert (row.actor, row.reason, row.token) == ("ana", "DSAR 1187", TOKEN)
    assert row.at == T0 or row.at.replace(tzinfo=UTC) == T0
    assert SSN not in " ".join(str(v) for v in row._mapping.values())


def test_refusals_are_logged_too_and_say_why(engine: Engine, private: VaultPrivateKey) -> None:
    vault = _vault(engine, private)
    with pytest.raises(RevealDenied, match=r"'sales-rep' may not reveal.*privacy-officer"):
        vault.reveal(TOKEN, private, actor="bob", role="sales-rep", reason="curious", now=T0)
    with pytest.raises(UnknownToken):
        vault.reveal(
            "tok_us_ssn_nope", private, actor="ana", role="privacy-officer", reason="x", now=T0
        )
    with pytest.raises(FatalError, match="does not open"):
        vault.reveal(
            TOKEN,
            VaultPrivateKey.generate(),
            actor="ana",
            role="privacy-officer",
            reason="wrong key",
            now=T0 + timedelta(seconds=1),
        )
    assert _outcomes(engine) == [
        ("role-denied", "sales-rep", "US_SSN"),
        ("unknown-token", "privacy-officer", None),
        ("key-mismatch", "privacy-officer", "US_SSN"),
    ]


def test_a_reveal_needs_an_actor_and_a_reason(engine: Engine, private: VaultPrivateKey) -> None:
    vault = _vault(engine, private)
    with pytest.raises(DataQualityError, match="actor's name and a reason"):
        vault.reveal(TOKEN, private, actor="ana", role="privacy-officer", reason=" ", now=T0)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DlpVaultReveal)) == 0


# -- the access log's hash chain -----------------------------------------------------------
def _reveal_each_outcome(vault: TokenVault, private: VaultPrivateKey) -> None:
    """Four attempts: revealed, role-denied, unknown-token, revealed."""
    vault.reveal(TOKEN, private, actor="ana", role="privacy-officer", reason="DSAR 1", now=T0)
    with pytest.raises(RevealDenied):
        vault.reveal(TOKEN, private, actor="bob", role="sales-rep", reason="curious", now=T0)
    with pytest.raises(UnknownToken):
        vault.reveal("tok_none", private, actor="ana", role="privacy-officer", reason="x", now=T0)
    later = T0 + timedelta(minutes=5)
    vault.reveal(TOKEN, private, actor="ana", role="privacy-officer", reason="DSAR 2", now=later)


def _seqs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(DlpVaultReveal.seq).order_by(DlpVaultReveal.seq)))


def test_the_access_log_is_a_signed_chain_that_verifies(
    engine: Engine, private: VaultPrivateKey
) -> None:
    _reveal_each_outcome(_vault(engine, private), private)
    check = verify_log(engine, LOG_KEY)
    assert (check.ok, check.checked, check.unlinked_before) == (True, 4, 0)
    with engine.connect() as conn:
        rows = conn.execute(select(DlpVaultReveal).order_by(DlpVaultReveal.seq)).all()
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert not verify_log(engine, b"another key").ok  # signatures are keyed


@pytest.mark.parametrize(
    ("tamper", "reason", "at"),
    [
        (
            "UPDATE dlp_vault_reveals SET reason = 'routine check' WHERE seq = :s2",
            "hash mismatch",
            2,
        ),
        ("UPDATE dlp_vault_reveals SET outcome = 'revealed' WHERE seq = :s2", "hash mismatch", 2),
        ("DELETE FROM dlp_vault_reveals WHERE seq = :s2", "prev link mismatch", 3),
        ("DELETE FROM dlp_vault_reveals WHERE seq = :s1", "prev link mismatch", 2),
        (
            "UPDATE dlp_vault_reveals SET prev_hash = NULL, hash = NULL, signature = NULL "
            "WHERE seq = :s3",
            "unlinked row",
            3,
        ),
        ("UPDATE dlp_vault_reveals SET signature = :forged WHERE seq = :s3", "bad signature", 3),
    ],
    ids=[
        "edited-reason",
        "edited-outcome",
        "deleted-middle",
        "deleted-first",
        "unlinked",
        "forged",
    ],
)
def test_an_edited_or_deleted_row_breaks_the_chain_where_it_happened(
    engine: Engine, private: VaultPrivateKey, tamper: str, reason: str, at: int
) -> None:
    _reveal_each_outcome(_vault(engine, private), private)
    seqs = _seqs(engine)
    with engine.begin() as conn:
        conn.execute(
            text(tamper),
            {"s1": seqs[0], "s2": seqs[1], "s3": seqs[2], "forged": "0" * 64},
        )
    check = verify_log(engine, LOG_KEY)
    assert not check.ok
    assert (check.reason, check.broken_seq) == (reason, seqs[at - 1])
    assert f"{reason} at access-log seq {seqs[at - 1]}" in check.describe()


def test_rows_from_before_the_chain_are_counted_apart(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """A log written before revision 0007 has rows without links: as many as the auditor
    declares are named, not verified, and the chain starts after them; undeclared, the
    first is a break, and fewer than declared (some deleted) is one too."""
    with engine.begin() as conn:
        conn.execute(
            insert(DlpVaultReveal),
            [
                {"token": TOKEN, "entity": "US_SSN", "actor": "old", "role": "privacy-officer",
                 "reason": "before 0007", "outcome": "revealed", "at": T0},
            ] * 2,
        )  # fmt: skip
    _reveal_each_outcome(_vault(engine, private), private)
    check = verify_log(engine, LOG_KEY, legacy_rows=2)
    assert (check.ok, check.checked, check.unlinked_before) == (True, 4, 2)
    assert "2 older unlinked rows" in check.describe()
    seqs = _seqs(engine)
    undeclared = verify_log(engine, LOG_KEY)
    assert (undeclared.ok, undeclared.reason, undeclared.broken_seq) == (
        False,
        "unlinked row",
        seqs[0],
    )
    one_too_few = verify_log(engine, LOG_KEY, legacy_rows=1)
    assert (one_too_few.reason, one_too_few.broken_seq) == ("unlinked row", seqs[1])
    missing = verify_log(engine, LOG_KEY, legacy_rows=3)
    assert (missing.ok, missing.reason, missing.broken_seq) == (False, "legacy rows missing", None)
    assert "2 unlinked rows where more were declared" in missing.describe()


def test_clearing_every_link_does_not_pass_the_log_off_as_legacy(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """With write access and no key, one UPDATE can clear every row's links and then edit
    or delete rows at will; the log must not then verify as rows from before revision
    0007 (found in review)."""
    _reveal_each_outcome(_vault(engine, private), private)
    seqs = _seqs(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE dlp_vault_reveals SET prev_hash = NULL, hash = NULL, signature = NULL")
        )
        conn.execute(
            text("UPDATE dlp_vault_reveals SET reason = 'routine' WHERE seq = :s"), {"s": seqs[1]}
        )
    check = verify_log(engine, LOG_KEY)
    assert (check.ok, check.reason, check.broken_seq) == (False, "unlinked row", seqs[0])


def test_concurrent_reveals_each_take_their_own_place_in_the_chain(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """Two threads revealing at once: the unique link makes the later commit of a pair
    that read the same last row fail, and it retries after the other; the chain stays one
    line with every attempt in it."""
    vault = _vault(engine, private)
    vault.ATTEMPTS = 50  # this test races on purpose, far more than people reveal
    start = threading.Barrier(2)

    def reveal_many(actor: str) -> None:
        start.wait()
        for n in range(15):
            vault.reveal(
                TOKEN, private, actor=actor, role="privacy-officer", reason=f"#{n}", now=T0
            )

    threads = [threading.Thread(target=reveal_many, args=(a,)) for a in ("ana", "eva")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify_log(engine, LOG_KEY)
    assert (check.ok, check.checked) == (True, 30), check.describe()


# -- erasure -------------------------------------------------------------------------------
def _erasure_case(private: VaultPrivateKey) -> tuple[list[ConsumedEvent], list[ConsumedEvent]]:
    """Vault entries (in topic order) and an HR erasure of employee E1."""
    hr = {"source": HR_EMPLOYEE_ORIGIN}
    entries = [
        vault_event(private, 0, "ev-e1", "219-09-9999", subject="E1", **hr),
        vault_event(private, 1, "ev-lead", "457-55-5462", subject="E1"),  # a lead "E1"
        vault_event(private, 2, "ev-e2", "536-22-8726", subject="E2", **hr),
        # one value, two owners: a lead's first, then the erased employee's
        vault_event(private, 3, "ev-shared-lead", "321-54-9876", subject="L-9"),
        vault_event(private, 4, "ev-shared-e1", "321-54-9876", subject="E1", **hr),
    ]
    return entries, [erasure_event("E1", 0, 0)]


def _tokens(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as conn:
        return {r.token: (r.origin, r.subject) for r in conn.execute(select(DlpVaultEntry))}


def test_an_hr_erasure_shreds_the_employees_values_in_the_vault_whatever_the_order(
    engine: Engine, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """Right to erasure reaches the vault: the erased employee's sealed values go with the
    erasure, and an entry of theirs that comes later never lands. A value of someone else
    stays, also a lead that happens to have the same id. A token whose latest entry is the
    employee's has no row (its older rows included). A rebuild that reads the erasure
    first ends the same."""
    entries, erasure = _erasure_case(private)
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply(entries)
    assert len(_tokens(engine)) == 4  # before the erasure: every token, shared one once
    store.apply(erasure)
    later = vault_event(private, 5, "ev-e1-later", "078-05-1120", subject="E1",
                        source=HR_EMPLOYEE_ORIGIN)  # fmt: skip
    store.apply([later])
    kept = _tokens(engine)
    assert sorted(kept.values()) == [
        ("/crm-hub/processors/sales", "E1"),  # the lead's value
        (HR_EMPLOYEE_ORIGIN, "E2"),
    ]
    live = _rows(engine)

    backend = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    with fresh_database(backend, database_urls, tmp_path / "rebuild") as url:
        rebuilt = make_engine(url)
        replay = ProjectionStore(rebuilt, audit_key=b"audit")
        replay.apply(erasure)  # the erasures' topic read first this time
        for entry in [*entries, later]:  # one batch each: the lead's shared value lands first
            replay.apply([entry])
        assert sorted(_rows(rebuilt)) == sorted(live)
        rebuilt.dispose()


# -- tombstones ------------------------------------------------------------------------------
def test_a_tombstone_on_the_topic_deletes_the_tokens_value_from_before_it(
    engine: Engine, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """A token deleted on the compacted topic (a record with its key and no value, as an
    operator or an erasure would send) leaves the vault: the token's row goes if it came
    from before the tombstone, in the same batch or an earlier one; a tombstone older than
    the row (re-delivered), or of a token the vault never had, changes nothing; an entry
    after it lands again. The live vault equals one rebuilt from what compaction leaves."""
    other = vault_event(private, 1, "ev-other", "219-09-9999")
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([vault_event(private, 0, "ev-1"), other])
    result = store.apply([Tombstone(DLP_VAULT, 0, 2, TOKEN), Tombstone(DLP_VAULT, 0, 3, "t-x")])
    assert (result.tombstones, result.outcomes) == (2, {(DLP_VAULT, "tombstone"): 2})
    assert set(_tokens(engine)) == {other.value["token"]}
    assert store.counts()["quarantine"] == 0  # a tombstone is no bad record
    assert store.counts()["audit_entries"] == 2  # nor an event

    again = vault_event(private, 4, "ev-4")  # the value vaulted again, after the tombstone
    store.apply([again])
    store.apply([Tombstone(DLP_VAULT, 0, 2, TOKEN)])  # the old tombstone, re-delivered
    assert set(_tokens(engine)) == {TOKEN, other.value["token"]}
    third = vault_event(private, 5, "ev-5", "536-22-8726")
    store.apply([third, Tombstone(DLP_VAULT, 0, 6, third.value["token"])])  # one batch
    assert third.value["token"] not in _tokens(engine)
    live = _rows(engine)

    backend = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    with fresh_database(backend, database_urls, tmp_path / "rebuild") as url:
        rebuilt = make_engine(url)
        ProjectionStore(rebuilt, audit_key=b"audit").apply([other, again])  # compacted
        assert sorted(_rows(rebuilt)) == sorted(live)
        rebuilt.dispose()


def _token(value: str) -> str:
    return tokenize(KEYS, "US_SSN", value, TokenizeParams())


def test_an_hr_erasure_queues_a_tombstone_for_each_token_it_took_out_of_the_vault(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """The tokens whose row the erasure deleted (its employee's latest entries, a shared
    value included) and those of entries of theirs shredded later are queued, in the
    erasure's transaction, for a tombstone on the topic; nobody else's. A token vaulted
    again since, from someone else's value, needs no tombstone (compaction keeps that
    newer entry and drops the erased one). A published round leaves the queue, except a
    token queued again after the round was read."""
    entries, erasure = _erasure_case(private)
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply(entries)
    assert store.queued_tombstones(10).tokens == []
    erased = store.apply(erasure)
    hr = {"subject": "E1", "source": HR_EMPLOYEE_ORIGIN}
    shredded = store.apply([vault_event(private, 5, "ev-e1-later", "078-05-1120", **hr)])
    theirs = {_token("219-09-9999"), _token("321-54-9876"), _token("078-05-1120")}
    round_ = store.queued_tombstones(10)
    assert set(round_.publish) == set(round_.tokens) == theirs
    assert (erased.tombstones_queued, shredded.tombstones_queued) == (2, 1)
    assert store.queued_tombstones(2).tokens == round_.tokens[:2]  # a round at a time

    store.apply([vault_event(private, 6, "ev-shared-again", "321-54-9876", subject="L-9")])
    round_ = store.queued_tombstones(10)
    assert set(round_.tokens) == theirs
    assert set(round_.publish) == theirs - {_token("321-54-9876")}
    # another late entry of theirs, shredded after the round was read: queued anew
    store.apply([vault_event(private, 7, "ev-e1-again", "219-09-9999", **hr)])
    store.tombstones_published(round_)
    assert store.queued_tombstones(10).tokens == [_token("219-09-9999")]
