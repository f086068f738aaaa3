"""Issue 7's end-to-end promise: seed the input with canary values and grep every output of
the running stack — downstream topics (clean, quarantine, incidents), worker logs, the
metrics endpoint, the read model and audit database — for them. The raw landing topic is
searched too, as the control that proves the grep finds a canary where one is."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from hub import topics
from hub.kafka_read import read_until_quiet
from tests.e2e.test_cli import started_up

pytestmark = pytest.mark.e2e

CARD = "4539 1488 0343 6467"  # Luhn-valid Visa test shape
SSN = "536-22-1234"
IBAN = "DE89 3704 0044 0532 0130 00"
AWS = "AKIAQ3EGVFXPLRT2MWZN"
# The forms a leak could take: as written, without separators.
CANARIES = [
    CARD,
    CARD.replace(" ", ""),
    SSN,
    SSN.replace("-", ""),
    IBAN,
    IBAN.replace(" ", ""),
    AWS,
]

HEADER = ["Lead ID", "First Name", "Last Name", "Email", "Phone", "Company", "Country", "Notes"]
ROWS = [
    ["C-1", "Ann", "Lee", "ann.lee@example.com", "(415) 555-0123", "Acme", "US",
     f"Paid the deposit by card {CARD}"],
    ["C-2", "Bo", "Chen", "bo.chen@example.com", "(415) 555-0124", "Acme", "US",
     f"W-9 pending, SSN {SSN}"],
    ["C-3", "Cy", "Diaz", "cy.diaz@example.com", "(415) 555-0125", "Acme", "US",
     f"Refund to IBAN {IBAN}"],
    ["C-4", "Di", "Evans", "di.evans@example.com", "(415) 555-0126", "Acme", "US",
     f"Shared key {AWS} by mistake"],
    # breaks a rule (e-mail): quarantined by validation, payload sealed
    ["C-5", "Ed", "Fox", "ed.fox@@example", "(415) 555-0127", "Acme", "US",
     f"Card on file {CARD}"],
    ["C-6", "Flo", "Gray", "flo@example.com", "(415) 555-0128", "Acme", "US", "Call back"],
]  # fmt: skip


def _read_topic(bootstrap: str, topic: str) -> list[bytes]:
    blobs: list[bytes] = []
    for msg in read_until_quiet(bootstrap, topic, group="canary"):
        blobs.append(msg.value() or b"")
        # A consumed message's headers are a list of pairs (the dict form is produce()'s).
        headers = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
        blobs.extend(v for _, v in headers if isinstance(v, bytes))
    return blobs


def _leaks(blob: bytes | str) -> list[str]:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return [c for c in CANARIES if c in text]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    with started_up(tmp_path) as (proc, home, log_path):
        deadline = time.monotonic() + 60
        runtime: dict[str, str] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                data = json.loads((home / "runtime.json").read_text())
                if len(data.get("children", {})) == 4:
                    runtime = data
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        assert runtime, "the stack never came up"
        yield home, runtime
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)


def test_no_canary_reaches_any_output(stack: tuple[Path, dict[str, str]]) -> None:
    home, runtime = stack
    drop = home / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    staging = home / "canary.csv.part"
    with staging.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
        fh.write("C-7,Gus,Hale,g@example.com,x,Acme,US," + CARD + ",extra,cells\n")  # unreadable
    staging.replace(drop / "canary.csv")
    db = home / "hub.db"

    def audited() -> int:
        try:
            with sqlite3.connect(db) as conn:
                return int(conn.execute("select count(*) from audit_log").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 90
    while audited() < len(ROWS) + 1:
        assert time.monotonic() < deadline, f"only {audited()} events audited"
        time.sleep(0.5)

    bootstrap = runtime["kafka_bootstrap"]
    # Control: the raw landing topic holds the canaries, so the grep below can find them.
    raw = b"".join(_read_topic(bootstrap, topics.RAW_SALES_LEADS))
    assert set(_leaks(raw)) >= {CARD, SSN, IBAN, AWS}

    found: dict[str, list[str]] = {}
    for topic in (topics.CLEAN_SALES_LEADS, topics.QUARANTINE, topics.DLP_INCIDENTS):
        blobs = _read_topic(bootstrap, topic)
        assert blobs, f"nothing on {topic}"
        found[topic] = [c for b in blobs for c in _leaks(b)]
    found["metrics"] = _leaks(httpx.get(f"{runtime['api_url']}/metrics", timeout=5).text)
    for log_file in sorted((home / "logs").glob("*.log")):
        found[log_file.name] = _leaks(log_file.read_bytes())
    with sqlite3.connect(db) as conn:
        found["database"] = [c for line in conn.iterdump() for c in _leaks(line)]
        incidents = conn.execute("select count(*) from quarantine_records").fetchone()[0]
    assert incidents >= 3  # blocked AWS key, broken e-mail, unreadable row
    assert {k: v for k, v in found.items() if v} == {}
