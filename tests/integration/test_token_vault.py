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
    NOT_A_TOKEN,
    RevealDenied,
    TokenVault,
    UnknownToken,
    VaultPrivateKey,
    entry_key,
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
    legacy: bool = False,
) -> ConsumedEvent:
    """A message of crm.dlp.vault.v1 as the processors write it (sealed per message), keyed
    by token and owner (`entry_key`) — or by the bare token, as before revision 0010."""
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
    key = token if legacy else entry_key(KEYS, token, source, subject)
    return ConsumedEvent(DLP_VAULT, 0, offset, key, meta, entry, b"v%d" % offset)


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


def test_a_key_of_the_vault_topic_reveals_its_token_and_is_logged_under_it(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """What a consumer of crm.dlp.vault.v1 holds is the entry's key, token@owner: it reveals
    the token's value, and the access log names the token."""
    vault = _vault(engine, private)
    key = entry_key(KEYS, TOKEN, "/crm-hub/processors/sales", "L-1")
    assert key.startswith(TOKEN + "@")
    assert (
        vault.reveal(f" {key}\n", private, actor="ana", role="privacy-officer", reason="r", now=T0)
        == SSN
    )
    with pytest.raises(UnknownToken):
        vault.reveal(
            TOKEN + "@zz", private, actor="ana", role="privacy-officer", reason="r", now=T0
        )
    with engine.connect() as conn:
        logged = conn.execute(select(DlpVaultReveal.token).order_by(DlpVaultReveal.seq)).scalars()
        assert list(logged) == [TOKEN, NOT_A_TOKEN]  # a malformed key is no token


def test_what_a_reason_holds_is_redacted_in_the_access_log(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """A reason is free text, and the log keeps it for good: a card number or e-mail
    address written into it is redacted, as the DLP stage would; the rest stays as given."""
    vault = _vault(engine, private)
    reason = "DSAR 1187, disputed card 4111 1111 1111 1111, reply to ann.lee@example.com"
    assert vault.reveal(TOKEN, private, actor="ana", role="privacy-officer", reason=reason, now=T0)
    with engine.connect() as conn:
        logged = conn.execute(select(DlpVaultReveal.reason)).scalar_one()
    assert logged == (
        "DSAR 1187, disputed card [REDACTED:CREDIT_CARD], reply to [REDACTED:EMAIL_ADDRESS]"
    )
    assert verify_log(engine, LOG_KEY).ok  # signed as logged


def test_a_value_pasted_for_a_token_is_refused_and_not_logged_as_typed(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """Whoever pastes the value where the token goes must not leave it in the access log,
    which is kept for good: the attempt is logged, under no token, and refused."""
    vault = _vault(engine, private)
    with pytest.raises(UnknownToken, match="not a vault token"):
        vault.reveal(SSN, private, actor="ana", role="privacy-officer", reason="r", now=T0)
    with pytest.raises(RevealDenied):  # refused for the role first, logged the same way
        vault.reveal(f" {SSN} ", private, actor="bob", role="sales-rep", reason="r", now=T0)
    assert (
        vault.reveal(
            f"  {TOKEN} ", private, actor="ana", role="privacy-officer", reason="r", now=T0
        )
        == SSN
    )
    with engine.connect() as conn:
        rows = conn.execute(select(DlpVaultReveal).order_by(DlpVaultReveal.seq)).all()
    assert [(r.token, r.outcome) for r in rows] == [
        (NOT_A_TOKEN, "unknown-token"),
        (NOT_A_TOKEN, "role-denied"),
        (TOKEN, "revealed"),
    ]
    assert all(SSN not in " ".join(str(v) for v in r._mapping.values()) for r in rows)


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
    hr: dict[str, Any] = {"source": HR_EMPLOYEE_ORIGIN}
    entries = [
        vault_event(private, 0, "ev-e1", "219-09-9999", subject="E1", **hr),
        vault_event(private, 1, "ev-lead", "457-55-5462", subject="E1"),  # a lead "E1"
        vault_event(private, 2, "ev-e2", "536-22-8726", subject="E2", **hr),
        # one value, two owners: a lead's first, then the erased employee's
        vault_event(private, 3, "ev-shared-lead", "321-54-9876", subject="L-9"),
        vault_event(private, 4, "ev-shared-e1", "321-54-9876", subject="E1", **hr),
    ]
    return entries, [erasure_event("E1", 0, 0)]


def _owners(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    """(token, origin, subject) of every vault row."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(DlpVaultEntry.token, DlpVaultEntry.origin, DlpVaultEntry.subject)
        )
        return sorted((r.token, r.origin, r.subject) for r in rows)


def _keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(DlpVaultEntry.vault_key)))


def _token(value: str) -> str:
    return tokenize(KEYS, "US_SSN", value, TokenizeParams())


SALES = "/crm-hub/processors/sales"


def test_an_hr_erasure_shreds_the_employees_values_in_the_vault_whatever_the_order(
    engine: Engine, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """Right to erasure reaches the vault: the erased employee's sealed values go with the
    erasure, and an entry of theirs that comes later never lands. A value of someone else
    stays, also a lead that happens to have the same id — and a value the employee shares
    with a lead stays the lead's, revealable, though the employee's entry of it was the
    latest: the vault keeps an entry per owner. A rebuild that reads the erasure first
    ends the same."""
    entries, erasure = _erasure_case(private)
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply(entries)
    assert len(_owners(engine)) == 5  # before the erasure: one row per token and owner
    assert store.counts()["vault_tokens"] == 4
    store.apply(erasure)
    later = vault_event(private, 5, "ev-e1-later", "078-05-1120", subject="E1",
                        source=HR_EMPLOYEE_ORIGIN)  # fmt: skip
    store.apply([later])
    assert _owners(engine) == sorted(
        [
            (_token("457-55-5462"), SALES, "E1"),  # the lead's value
            (_token("536-22-8726"), HR_EMPLOYEE_ORIGIN, "E2"),
            (_token("321-54-9876"), SALES, "L-9"),  # shared, the lead's entry of it
        ]
    )
    vault = TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY)
    shared = vault.reveal(
        _token("321-54-9876"), private, actor="ana", role="privacy-officer", reason="L-9", now=T0
    )
    assert shared == "321-54-9876"
    with pytest.raises(UnknownToken):
        vault.reveal(
            _token("219-09-9999"), private, actor="ana", role="privacy-officer", reason="E1", now=T0
        )
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
def test_a_tombstone_on_the_topic_deletes_the_keys_value_from_before_it(
    engine: Engine, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """A vault key deleted on the compacted topic (a record with the key and no value, as
    an operator or an erasure would send) leaves the vault: the key's row goes if it came
    from before the tombstone, in the same batch or an earlier one; a tombstone older than
    the row (re-delivered), or of a key the vault never had, changes nothing; an entry
    after it lands again. Another owner's entry of the same token is another key, and
    stays. The live vault equals one rebuilt from what compaction leaves."""
    first = vault_event(private, 0, "ev-1")
    other = vault_event(private, 1, "ev-other", "219-09-9999")
    same_value = vault_event(private, 2, "ev-same", subject="L-2")  # TOKEN, another lead
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([first, other, same_value])
    assert first.key != same_value.key
    result = store.apply(
        [Tombstone(DLP_VAULT, 0, 3, str(first.key)), Tombstone(DLP_VAULT, 0, 4, "t-x")]
    )
    assert (result.tombstones, result.outcomes) == (2, {(DLP_VAULT, "tombstone"): 2})
    assert _keys(engine) == {other.key, same_value.key}
    assert store.counts()["quarantine"] == 0  # a tombstone is no bad record
    assert store.counts()["audit_entries"] == 3  # nor an event

    again = vault_event(private, 5, "ev-5")  # the value vaulted again, after the tombstone
    store.apply([again])
    store.apply([Tombstone(DLP_VAULT, 0, 3, str(first.key))])  # the old one, re-delivered
    assert _keys(engine) == {first.key, other.key, same_value.key}
    third = vault_event(private, 6, "ev-6", "536-22-8726")
    store.apply([third, Tombstone(DLP_VAULT, 0, 7, str(third.key))])  # one batch
    assert third.key not in _keys(engine)
    live = _rows(engine)

    backend = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    with fresh_database(backend, database_urls, tmp_path / "rebuild") as url:
        rebuilt = make_engine(url)
        compacted = [other, same_value, again]
        ProjectionStore(rebuilt, audit_key=b"audit").apply(compacted)
        assert sorted(_rows(rebuilt)) == sorted(live)
        rebuilt.dispose()


def test_entries_keyed_by_the_bare_token_from_before_owner_keys_still_count(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """Entries written before keys named their owner (key: the token) land under that
    key, reveal, and a tombstone of the bare token deletes them and nothing else; an
    owner-keyed entry of the same value beside them is a row of its own."""
    old = vault_event(private, 0, "ev-old", legacy=True)
    new = vault_event(private, 1, "ev-new", subject="L-2")
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([old, new])
    assert _keys(engine) == {TOKEN, new.key}
    assert store.counts()["vault_tokens"] == 1
    store.apply([Tombstone(DLP_VAULT, 0, 2, TOKEN)])
    assert _keys(engine) == {new.key}
    revealed = TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY).reveal(
        TOKEN, private, actor="ana", role="privacy-officer", reason="check", now=T0
    )
    assert revealed == SSN


def test_a_reveal_opens_the_row_sealed_to_the_callers_key(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """A value two owners share, sealed to two vault keys (the key was rotated between
    their entries): the holder of either private key gets the value from the row sealed
    to it, whichever is newer."""
    rotated = VaultPrivateKey.generate()
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply(
        [vault_event(private, 0, "ev-old-key"), vault_event(rotated, 1, "ev-new", subject="L-2")]
    )
    vault = TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY)
    for key in (private, rotated):
        assert (
            vault.reveal(TOKEN, key, actor="ana", role="privacy-officer", reason="check", now=T0)
            == SSN
        )
    assert [o for o, _, _ in _outcomes(engine)] == ["revealed", "revealed"]


def test_an_hr_erasure_queues_a_tombstone_for_each_key_it_took_out_of_the_vault(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """The keys whose row the erasure deleted (its employee's entries, of a shared value
    included) and those of entries of theirs shredded later are queued, in the erasure's
    transaction, for a tombstone on the topic; nobody else's — a lead's entry of the
    shared value is another key. A published round leaves the queue, except a key queued
    again after the round was read."""
    entries, erasure = _erasure_case(private)
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply(entries)
    assert store.queued_tombstones(10).keys == []
    erased = store.apply(erasure)
    hr: dict[str, Any] = {"subject": "E1", "source": HR_EMPLOYEE_ORIGIN}
    shredded = store.apply([vault_event(private, 5, "ev-e1-later", "078-05-1120", **hr)])
    theirs = {
        entry_key(KEYS, _token(v), HR_EMPLOYEE_ORIGIN, "E1")
        for v in ("219-09-9999", "321-54-9876", "078-05-1120")
    }
    round_ = store.queued_tombstones(10)
    assert set(round_.publish) == set(round_.keys) == theirs
    assert (erased.tombstones_queued, shredded.tombstones_queued) == (2, 1)
    assert store.queued_tombstones(2).keys == round_.keys[:2]  # a round at a time

    store.apply([vault_event(private, 6, "ev-shared-again", "321-54-9876", subject="L-9")])
    assert set(store.queued_tombstones(10).publish) == theirs  # the lead's key is not E1's
    # another late entry of theirs, shredded after the round was read: queued anew
    store.apply([vault_event(private, 7, "ev-e1-again", "219-09-9999", **hr)])
    store.tombstones_published(round_)
    assert store.queued_tombstones(10).keys == [
        entry_key(KEYS, _token("219-09-9999"), HR_EMPLOYEE_ORIGIN, "E1")
    ]


def test_a_key_queued_again_under_a_clock_set_back_stays_queued(
    engine: Engine, private: VaultPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round read, then the erased employee's key queued again while the wall clock
    stands an hour earlier (set back by NTP, another host's clock): publishing the round
    does not take the key off, since its tombstone for the later entry is still due."""
    import projections.store as store_module

    hr: dict[str, Any] = {"subject": "E1", "source": HR_EMPLOYEE_ORIGIN}
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([vault_event(private, 0, "ev-e1", **hr), erasure_event("E1", 0, 0)])
    round_ = store.queued_tombstones(10)
    (key,) = round_.keys

    class Earlier(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(store_module, "datetime", Earlier)
    store.apply([vault_event(private, 1, "ev-e1-late", **hr)])  # shredded: queued again
    monkeypatch.undo()
    store.tombstones_published(round_)
    assert store.queued_tombstones(10).keys == [key]
    store.tombstones_published(store.queued_tombstones(10))
    assert store.queued_tombstones(10).keys == []


def test_a_bare_token_key_vaulted_again_since_needs_no_tombstone(
    engine: Engine, private: VaultPrivateKey
) -> None:
    """Entries from before owner keys: an erased employee's bare-token key that another
    owner's entry (same key then) took since needs no tombstone — compaction keeps the
    newer entry and drops the erased one behind it — but leaves the queue with its round."""
    hr: dict[str, Any] = {"subject": "E1", "source": HR_EMPLOYEE_ORIGIN}
    store = ProjectionStore(engine, audit_key=b"audit")
    store.apply([vault_event(private, 0, "ev-e1", legacy=True, **hr)])
    store.apply([erasure_event("E1", 0, 0)])
    assert store.queued_tombstones(10).publish == [TOKEN]
    store.apply([vault_event(private, 1, "ev-lead", legacy=True)])
    round_ = store.queued_tombstones(10)
    assert (round_.publish, round_.keys) == ([], [TOKEN])
    store.tombstones_published(round_)
    assert store.queued_tombstones(10).keys == []
    assert _keys(engine) == {TOKEN}


# -- the upgrade to owner keys ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_upgrade_keys_existing_rows_by_their_token_and_the_downgrade_keeps_the_latest(
    backend: str, private: VaultPrivateKey, database_urls: list[str], tmp_path: Path
) -> None:
    """A vault at revision 0009 (one row per token) upgraded: each row's key is its token
    (the topic's key when it was written), it still reveals, and a queued tombstone keeps
    its key. Downgraded again with a value of two owners: the newer row stays."""
    from alembic import command

    from projections.db import alembic_config, migrate

    with fresh_database(backend, database_urls, tmp_path, migrated=False) as url:
        migrate(url, "0009")
        old = make_engine(url)
        sealed = seal_value(private.public, TOKEN, "US_SSN", SSN)
        try:
            with old.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO dlp_token_vault (token, entity, sealed, key_id, event_id, "
                        "sealed_at, last_event_id, source_topic, source_partition, "
                        "source_offset, updated_at, origin, subject) VALUES (:t, 'US_SSN', :s, "
                        ":k, 'ev-1', :at, 'v-1', 'crm.dlp.vault.v1', 0, 0, :at, :o, 'E1')"
                    ),
                    {
                        "t": TOKEN,
                        "s": sealed,
                        "k": private.public.key_id,
                        "at": T0,
                        "o": HR_EMPLOYEE_ORIGIN,
                    },
                )
                conn.execute(
                    text("INSERT INTO dlp_vault_tombstones (token, queued_at) VALUES ('t-x', :at)"),
                    {"at": T0},
                )
        finally:
            old.dispose()
        migrate(url)
        engine = make_engine(url)
        try:
            assert _keys(engine) == {TOKEN}
            assert _owners(engine) == [(TOKEN, HR_EMPLOYEE_ORIGIN, "E1")]
            store = ProjectionStore(engine, audit_key=b"audit")
            assert store.queued_tombstones(10).keys == ["t-x"]
            vault = TokenVault(engine, {"privacy-officer"}, log_key=LOG_KEY)
            got = vault.reveal(TOKEN, private, actor="ana", role="privacy-officer",
                               reason="check", now=T0)  # fmt: skip
            assert got == SSN
            store.apply([vault_event(private, 3, "ev-lead", subject="L-2")])  # a second owner
            assert len(_owners(engine)) == 2
        finally:
            engine.dispose()

        cfg = alembic_config()
        down = make_engine(url)
        try:
            with down.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0009")
            with down.connect() as conn:
                rows = conn.execute(text("SELECT token, subject FROM dlp_token_vault")).all()
                queued = conn.scalars(text("SELECT token FROM dlp_vault_tombstones")).all()
            assert [tuple(r) for r in rows] == [(TOKEN, "L-2")]  # the newer entry
            assert list(queued) == ["t-x"]
        finally:
            down.dispose()
