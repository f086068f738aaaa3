"""`crmhub dlp scan|explain` as the README shows them."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.test_cli import crmhub

pytestmark = pytest.mark.e2e

CARD = "4539 1488 0343 6467"


def test_scan_text_file_as_jsonl_gives_offsets_never_values(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    line2 = f"card {CARD} please"
    notes.write_text(f"nothing here\n{line2}\nIBAN DE89 3704 0044 0532 0130 00\n")
    done = crmhub("dlp", "scan", str(notes), "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    findings = [json.loads(line) for line in done.stdout.splitlines()]
    by_entity = {f["entity"]: f for f in findings}
    card = by_entity["CREDIT_CARD"]
    assert card["record"] == 2
    assert line2[card["start"] : card["end"]] == CARD
    assert by_entity["IBAN_CODE"]["record"] == 3
    assert set(card) == {"record", "start", "end", "entity", "score", "recognizer"}
    assert CARD not in done.stdout
    assert "3704" not in done.stdout


def test_scan_numbers_records_right_across_engine_batches(tmp_path: Path) -> None:
    """The scan hands the engine 500 texts a call: findings on either side of a batch
    boundary keep their own line numbers and offsets."""
    lines = [f"line {n} nothing to see" for n in range(1, 1203)]
    with_card = {1: 0, 500: 3, 501: 7, 1001: 1, 1202: 5}  # line -> spaces before the card
    for number, pad in with_card.items():
        lines[number - 1] = " " * pad + f"card {CARD}"
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(lines) + "\n")
    done = crmhub("dlp", "scan", str(notes), "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    findings = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(f["record"], f["start"]) for f in findings] == [
        (number, pad + len("card ")) for number, pad in with_card.items()
    ]
    assert {f["entity"] for f in findings} == {"CREDIT_CARD"}


def test_scan_csv_reports_the_field(tmp_path: Path) -> None:
    sheet = tmp_path / "leads.csv"
    with sheet.open("w", newline="") as fh:
        csv.writer(fh).writerows([["Lead ID", "Notes"], ["L-1", "ok"], ["L-2", f"card {CARD}"]])
    done = crmhub("dlp", "scan", str(sheet), "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (finding,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert finding["field"] == "Notes"
    assert finding["record"] == 3  # the sheet row (header is row 1)
    assert finding["entity"] == "CREDIT_CARD"


def test_explain_names_recognizer_pattern_and_validator(tmp_path: Path) -> None:
    done = crmhub("dlp", "explain", f"card {CARD}", cwd=tmp_path, COLUMNS="200")
    assert done.returncode == 0, done.stderr
    assert "CREDIT_CARD" in done.stdout
    assert "credit_card" in done.stdout
    assert "checksum ok" in done.stdout
    assert CARD not in done.stdout  # masked even here


def _block(stdout: str, entity: str) -> str:
    """The block of `explain`'s output whose heading names `entity`."""
    blocks = [b for b in stdout.split("\n\n") if b.strip()]
    return next(b for b in blocks if entity in b.splitlines()[0])


def test_explain_says_why_a_lookalike_is_not_reported(tmp_path: Path) -> None:
    """The SSA's published sample number has the SSN shape: explain shows the pattern that
    matched it and that the validator said no, still masked — readable in an 80-column
    terminal, one block per candidate."""
    done = crmhub("dlp", "explain", "ssn 123-45-6789", cwd=tmp_path, COLUMNS="80")
    assert done.returncode == 0, done.stderr
    ssn_block = _block(done.stdout, "US_SSN")
    assert "not reported: the validator rejected it" in ssn_block.splitlines()[0]
    assert "us_ssn, pattern ssn_dashed" in ssn_block
    assert "context     ssn" in ssn_block  # the context word the pattern had nearby
    assert max(len(line.rstrip()) for line in done.stdout.splitlines()) <= 80
    assert "123-45-6789" not in done.stdout
    assert "0 finding(s) reported" in done.stdout


def test_explain_says_when_a_nearer_reading_lowered_a_finding(tmp_path: Path) -> None:
    """4425101057 passes the NHS check and dials in North America: after "call me on" the
    phone reading wins, and explain says the NHS finding was lowered and why."""
    done = crmhub("dlp", "explain", "call me on 442 510 1057", cwd=tmp_path, COLUMNS="120")
    assert done.returncode == 0, done.stderr
    nhs = _block(done.stdout, "UK_NHS")
    assert "below 0.5" in nhs.splitlines()[0]
    assert "0.40 (lowered from 1.00: its context or field reads PHONE_NUMBER)" in nhs
    phone = _block(done.stdout, "PHONE_NUMBER")
    assert "reported" in phone.splitlines()[0]
    assert "lowered" not in phone
    labelled = crmhub("dlp", "explain", "NHS 442 510 1057", cwd=tmp_path, COLUMNS="120")
    assert "lowered" not in labelled.stdout  # its own context word is nearer: not lowered
    assert "442 510 1057" not in done.stdout + labelled.stdout


def test_scan_of_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    done = crmhub("dlp", "scan", str(tmp_path / "nope.txt"), cwd=tmp_path)
    assert done.returncode == 2
    assert "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_vault_keygen_writes_an_owner_only_key_once(tmp_path: Path) -> None:
    from hub.dlp.vault import VaultPrivateKey, VaultPublicKey

    path = tmp_path / "vault.pem"
    done = crmhub("dlp", "vault-keygen", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    name, _, text = done.stdout.strip().partition("=")
    assert name == "HUB_DLP_VAULT_PUBLIC_KEY"
    assert VaultPublicKey.parse(text).key_id == VaultPrivateKey.load(path).public.key_id
    assert path.stat().st_mode & 0o777 == 0o600
    again = crmhub("dlp", "vault-keygen", str(path), cwd=tmp_path)
    assert again.returncode == 2
    assert "never overwritten" in again.stderr


def test_reveal_gives_the_value_to_the_policys_role_only_and_logs_both(tmp_path: Path) -> None:
    """A vault as the projection leaves it (SQLite under HUB_HOME, the key pair the hub
    generated there): the privacy officer gets the value back, a sales rep an error — and
    the access log has both attempts, without the value."""
    from sqlalchemy import select

    from hub.dlp.vault import VaultPrivateKey, entry_key
    from hub.settings import load_settings
    from projections.db import make_engine, migrate
    from projections.models import DlpVaultReveal
    from projections.store import ProjectionStore
    from tests.integration.test_token_vault import KEYS, vault_event
    from tests.integration.test_token_vault import SSN as ssn
    from tests.integration.test_token_vault import TOKEN as token

    home = tmp_path / "home"
    settings = load_settings(home=home)
    migrate(settings.effective_database_url)
    settings.vault_public_key()  # generates the pair into HUB_HOME, as the processors do
    private = VaultPrivateKey.load(settings.vault_private_key_path)
    engine = make_engine(settings.effective_database_url)
    store = ProjectionStore(engine, audit_key=settings.audit_key_bytes())
    store.apply([vault_event(private, 0, "ev-1")])
    denied = crmhub(
        "dlp",
        "reveal",
        token,
        "--role",
        "sales-rep",
        "--reason",
        "curious [bold]",
        cwd=tmp_path,
        HUB_HOME=str(home),
    )
    assert denied.returncode == 2
    assert "may not reveal" in denied.stderr
    assert ssn not in denied.stdout + denied.stderr
    granted = crmhub(
        "dlp", "reveal", token, "--role", "privacy-officer", "--reason", "DSAR 1187",
        "--actor", "ana", cwd=tmp_path, HUB_HOME=str(home),
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout == ssn + "\n"
    with engine.connect() as conn:
        log = conn.execute(select(DlpVaultReveal).order_by(DlpVaultReveal.seq)).all()
    engine.dispose()
    assert [(r.role, r.outcome, r.reason) for r in log] == [
        ("sales-rep", "role-denied", "curious [bold]"),
        ("privacy-officer", "revealed", "DSAR 1187"),
    ]
    assert log[1].actor == "ana"
    # What an auditor reads: newest first, filtered, never the value.
    listed = crmhub("dlp", "access-log", "--format", "jsonl", cwd=tmp_path, HUB_HOME=str(home))
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["actor"], e["role"], e["outcome"], e["reason"]) for e in entries] == [
        ("ana", "privacy-officer", "revealed", "DSAR 1187"),
        (log[0].actor, "sales-rep", "role-denied", "curious [bold]"),
    ]
    assert {e["token"] for e in entries} == {token}
    assert entries[0]["entity"] == "US_SSN"
    assert entries[0]["at"].endswith("+00:00")
    ana = crmhub(
        "dlp", "access-log", "--actor", "ana", "--since", "2000-01-01", "--format", "jsonl",
        cwd=tmp_path, HUB_HOME=str(home),
    )  # fmt: skip
    assert [json.loads(line)["reason"] for line in ana.stdout.splitlines()] == ["DSAR 1187"]
    # a key of the vault topic (token@owner), as a consumer of crm.dlp.vault.v1 has it
    key = entry_key(KEYS, token, "/crm-hub/processors/sales", "L-1")
    keyed = crmhub(
        "dlp", "access-log", "--token", key, "--format", "jsonl", cwd=tmp_path, HUB_HOME=str(home)
    )
    assert [json.loads(line)["seq"] for line in keyed.stdout.splitlines()] == [
        e["seq"] for e in entries
    ]
    future = crmhub("dlp", "access-log", "--since", "2999-01-01", cwd=tmp_path, HUB_HOME=str(home))
    assert "0 attempt(s)" in future.stdout
    table = crmhub("dlp", "access-log", cwd=tmp_path, HUB_HOME=str(home), COLUMNS="80")
    assert table.returncode == 0, table.stderr
    assert "role-denied" in table.stdout
    assert token in table.stdout  # whole at 80 columns: it is what a reader copies
    assert "(role sales-rep)" in table.stdout
    assert "curious [bold]" in table.stdout  # as typed, not taken for markup
    assert "2 attempt(s)" in table.stdout
    assert ssn not in listed.stdout + table.stdout
    # The auditor's check covers the access log: intact, then an edited row is named.
    ok = crmhub("audit", "verify", cwd=tmp_path, HUB_HOME=str(home), COLUMNS="200")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "vault access log verified: 2 reveal attempts verified" in ok.stdout
    with sqlite3.connect(home / "hub.db") as conn:
        conn.execute("UPDATE dlp_vault_reveals SET reason = 'routine' WHERE seq = ?", (log[0].seq,))
    broken = crmhub("audit", "verify", cwd=tmp_path, HUB_HOME=str(home), COLUMNS="200")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"vault access log broken: hash mismatch at access-log seq {log[0].seq}" in (
        broken.stderr
    )
    assert "audit trail verified" in broken.stdout  # the other chains are still checked


def test_reveal_and_verify_never_make_up_an_audit_key(tmp_path: Path) -> None:
    """Run where the hub's audit key is not (no HUB_AUDIT_KEY, no audit.key in HUB_HOME):
    a reveal would sign its log row with a key the hub's does not verify, and a check
    would call every signature bad. Both stop with one line saying where the key is
    looked for, create no key, and the reveal logs nothing and shows nothing."""
    from sqlalchemy import func, select

    from hub.settings import load_settings
    from projections.db import make_engine, migrate
    from projections.models import DlpVaultReveal
    from tests.integration.test_token_vault import TOKEN as token

    home = tmp_path / "home"
    settings = load_settings(home=home)
    migrate(settings.effective_database_url)
    settings.vault_public_key()  # the vault's key pair is there; the audit key is not
    for command in (
        ("audit", "verify"),
        ("dlp", "reveal", token, "--role", "privacy-officer", "--reason", "DSAR 7"),
    ):
        # crmhub's environment drops any HUB_AUDIT_KEY of the test run's own
        result = crmhub(*command, cwd=tmp_path, HUB_HOME=str(home))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "no audit key" in result.stderr
        assert str(home / "audit.key") in result.stderr
        assert "Traceback" not in result.stderr
        assert not (home / "audit.key").exists()
    engine = make_engine(settings.effective_database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DlpVaultReveal)) == 0
    engine.dispose()
