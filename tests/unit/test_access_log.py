"""The vault access log's link hash reads one way only: every field counts, and no two
different rows share an encoding."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from projections.access_log import RevealRecord, record_hash
from projections.audit import GENESIS_HASH

ROW = RevealRecord(
    token="tok_us_ssn_abc",
    entity="US_SSN",
    actor="ana",
    role="privacy-officer",
    reason="DSAR 1187",
    outcome="revealed",
    at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
)


def test_the_same_row_after_the_same_link_hashes_the_same() -> None:
    assert record_hash(GENESIS_HASH, ROW) == record_hash(GENESIS_HASH, dataclasses.replace(ROW))
    assert record_hash(GENESIS_HASH, ROW) != record_hash("1" * 64, ROW)


@pytest.mark.parametrize(
    "changed",
    [
        {"token": "tok_us_ssn_abd"},
        {"entity": None},
        {"entity": ""},
        {"actor": "eva"},
        {"role": "sales-rep"},
        {"reason": "DSAR 1188"},
        {"outcome": "role-denied"},
        {"at": datetime(2026, 12, 2, 9, 0, 0, 1, tzinfo=UTC)},
        # the same characters split differently between two fields
        {"actor": "anap", "role": "rivacy-officer"},
    ],
)
def test_every_field_is_covered(changed: dict[str, Any]) -> None:
    assert record_hash(GENESIS_HASH, ROW) != record_hash(
        GENESIS_HASH, dataclasses.replace(ROW, **changed)
    )


def test_an_absent_entity_and_an_empty_one_differ() -> None:
    none, empty = (dataclasses.replace(ROW, entity=e) for e in (None, ""))
    assert record_hash(GENESIS_HASH, none) != record_hash(GENESIS_HASH, empty)


def test_a_naive_time_is_taken_as_utc_as_sqlite_returns_it() -> None:
    naive = dataclasses.replace(ROW, at=ROW.at.replace(tzinfo=None))
    assert record_hash(GENESIS_HASH, naive) == record_hash(GENESIS_HASH, ROW)
