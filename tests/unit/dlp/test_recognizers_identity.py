"""US SSN and US passport recognizers: must-match and must-not-match tables, scanned with
the reference scan at the usual 0.5 threshold."""

from __future__ import annotations

import pytest

from hub.dlp.base import scan_reference
from hub.dlp.recognizers.us_passport import UsPassportRecognizer
from hub.dlp.recognizers.us_ssn import UsSsnRecognizer
from tests.unit.dlp.scan_helpers import COMMON_HARD_NEGATIVES
from tests.unit.dlp.scan_helpers import spans as found

HARD_NEGATIVES = [
    *COMMON_HARD_NEGATIVES,
    "call 415-555-2671",
]

# -- US SSN --------------------------------------------------------------------------------

SSN = UsSsnRecognizer()

SSN_MATCH = [
    ("SSN 536-22-1234 on file", "536-22-1234", 0.9),
    ("employee 536-22-1234", "536-22-1234", 0.6),  # dashed layout stands on its own
    ("social security number: 536 22 1234", "536 22 1234", 0.7),
    ("ssn: 536221234", "536221234", 0.5),
    ("SSNs 001-01-0001 and 899-99-9999", "001-01-0001", 0.9),
    ("SSNs 001-01-0001 and 899-99-9999", "899-99-9999", 0.9),
    ("(665-12-3456)", "665-12-3456", 0.6),
]

SSN_NOT_MATCH = [
    *HARD_NEGATIVES,
    "000-22-1234",  # area 000
    "666-22-1234",  # area 666
    "900-22-1234",  # area 9xx
    "999-22-1234",
    "ssn 536-00-1234",  # group 00
    "ssn 536-22-0000",  # serial 0000
    "ssn 123-45-6789",  # published sample
    "ssn 078-05-1120",  # the Woolworth wallet card
    "ssn 111-11-1111",  # one repeated digit
    "536221234",  # nine plain digits need context
    "order 536221234",
    "536 22 1234",  # spaced needs context
    "1536-22-1234",  # part of a longer token
    "536-22-12345",
    "SSN? no, tel 415 536 22 1234",  # inside a longer spaced run
    "ssn ratio 1.536-22-1234",  # glued to a decimal
    "536-22-1234-7",
    "v536-22-1234",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), SSN_MATCH)
def test_ssn_matches(text: str, expected: str, min_score: float) -> None:
    assert found(SSN, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", SSN_NOT_MATCH)
def test_ssn_does_not_match(text: str) -> None:
    assert found(SSN, text) == {}


@pytest.mark.parametrize(
    ("field", "is_found"),
    [
        ("ssn", True),
        ("employee.SSN", True),
        ("social_security_number", True),
        ("order_id", False),
        ("phone", False),
        (None, False),
    ],
)
def test_ssn_nine_digits_found_only_in_ssn_fields(field: str | None, is_found: bool) -> None:
    assert bool(found(SSN, "536221234", field=field)) is is_found


@pytest.mark.parametrize("value", ["000221234", "666221234", "912221234", "536001234"])
def test_ssn_field_does_not_rescue_invalid_structure(value: str) -> None:
    assert found(SSN, value, field="ssn") == {}


# -- US passport ---------------------------------------------------------------------------

PASSPORT = UsPassportRecognizer()

PASSPORT_MATCH = [
    ("passport A12345678", "A12345678", 0.75),
    ("Passport No: 912345678.", "912345678", 0.65),
    ("US passport number C03005988 expires 2030", "C03005988", 0.75),
    ("travel document: Z98765432", "Z98765432", 0.75),
]

PASSPORT_NOT_MATCH = [
    *HARD_NEGATIVES,
    "A12345678",  # no passport word
    "ticket 912345678",
    "passport A1234567",  # too short
    "passport AB1234567",  # two letters
    "passport 9123456789",  # ten digits
    "passport a12345678",  # lower case
    "passport A00000000",  # one repeated digit
    "passport X12345678-2",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), PASSPORT_MATCH)
def test_passport_matches(text: str, expected: str, min_score: float) -> None:
    assert found(PASSPORT, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", PASSPORT_NOT_MATCH)
def test_passport_does_not_match(text: str) -> None:
    assert found(PASSPORT, text) == {}


@pytest.mark.parametrize(
    ("field", "is_found"), [("passport_number", True), ("order_id", False), (None, False)]
)
def test_passport_field_context(field: str | None, is_found: bool) -> None:
    assert bool(found(PASSPORT, "A12345678", field=field)) is is_found


def test_passport_is_context_gated_at_any_threshold() -> None:
    assert list(scan_reference(PASSPORT, "A12345678 912345678", min_score=0.0)) == []
