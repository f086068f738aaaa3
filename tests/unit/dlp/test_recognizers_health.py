"""Table-driven tests for the context-gated health recognizers: date of birth and medical
record number."""

from __future__ import annotations

import pytest

from hub.dlp.recognizers.date_of_birth import DateOfBirthRecognizer
from hub.dlp.recognizers.medical_record_number import MedicalRecordNumberRecognizer
from tests.unit.dlp.scan_helpers import THRESHOLD, nothing
from tests.unit.dlp.scan_helpers import reports as found

# -- date of birth -------------------------------------------------------------------------
DOB_MATCH = [
    ("DOB: 1984-03-05", "1984-03-05", 0.6),
    ("DOB:1984-03-05", "1984-03-05", 0.6),
    ("date of birth 1984/03/05", "1984/03/05", 0.6),
    ("Born 3/5/1984 in Ohio", "3/5/1984", 0.6),
    ("birthday: 12/31/1990.", "12/31/1990", 0.6),  # US order only
    ("Geburtsdatum 31.12.1990", "31.12.1990", 0.6),
    ("geb. 05.03.1984", "05.03.1984", 0.6),
    ("birthdate 05-03-1984", "05-03-1984", 0.6),
    ("fecha de nacimiento: 25/12/1975", "25/12/1975", 0.6),  # EU order only
    ("Jean, né le 05/03/1984 à Lyon", "05/03/1984", 0.6),
    ("She was born March 5, 1984.", "March 5, 1984", 0.6),
    ("born on 5th of March 1984", "5th of March 1984", 0.6),
    ("DOB 5 Mar. 1984", "5 Mar. 1984", 0.6),
    ("dob 3/5/84", "3/5/84", THRESHOLD),
    ("data di nascita 29/02/2000", "29/02/2000", 0.6),  # leap day
]
DOB_NOT = [
    "meeting on 1984-03-05",  # no birth context
    "invoice dated 03/05/1984",
    "DOB: 2024-03-05 14:22:01",  # a timestamp
    "DOB 2024-03-05T14:22:01Z",
    "dob 1709648521000",  # epoch millis
    "DOB: 1984-02-30",  # not a calendar date
    "DOB: 13/13/1984",
    "born 29/02/2001",  # 2001 is not a leap year
    "DOB: 31.02.1990",
    "DOB 2099-01-01",  # in the future
    "born March 32, 1984",
    "DOB v2.14.3",
    "DOB ZIP 94105-1234",
    "born ISBN 978-3-16-148410-0",
    "dob 1.2.1984.5",  # part of a longer dotted run
    "contrat signé le 05/03/2024",  # "né le" inside a longer French word
]


@pytest.mark.parametrize(("text", "expected", "min_score"), DOB_MATCH)
def test_date_of_birth_matches(text: str, expected: str, min_score: float) -> None:
    assert found(DateOfBirthRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", DOB_NOT)
def test_date_of_birth_does_not_match(text: str) -> None:
    assert nothing(DateOfBirthRecognizer(), text)


@pytest.mark.parametrize(
    ("field", "reported"),
    [("dob", True), ("patient.dateOfBirth", True), ("birth_date", True), ("created_at", False)],
)
def test_date_of_birth_field_is_context(field: str, reported: bool) -> None:
    assert found(DateOfBirthRecognizer(), "1984-03-05", "1984-03-05", 0.6, field=field) is reported


# -- medical record number ------------------------------------------------------------------
MRN_MATCH = [
    ("MRN: 00123456", "00123456", 0.6),
    ("Medical record number A1234567", "A1234567", 0.6),
    ("patient ID: 4455667", "4455667", 0.6),
    ("chart #MR0099812 reviewed", "MR0099812", 0.6),
    ("MRN 123-45-678", "123-45-678", THRESHOLD),
    ("mrn=AB12C34567.", "AB12C34567", 0.6),
]
MRN_NOT = [
    "Order 12345678",  # no context
    "A1234567",
    "MRN pending",
    "chart updated 20240305",  # a date
    "chart 2024-03-05",
    "chart 03-05-2024",
    "MRN 000000",
    "MRN abcdefg1",  # too few digits
    "patient id v2.14.3",
    "patient id ZIP 94105-1234",
    "chart ISBN 978-3-16-148410-0",
    "patient id 550e8400-e29b-41d4-a716-446655440000",
    "MRN 2024-03-05 14:22:01",
    "medical record 1709648521000",  # epoch millis: 13 digits
]


@pytest.mark.parametrize(("text", "expected", "min_score"), MRN_MATCH)
def test_medical_record_number_matches(text: str, expected: str, min_score: float) -> None:
    assert found(MedicalRecordNumberRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", MRN_NOT)
def test_medical_record_number_does_not_match(text: str) -> None:
    assert nothing(MedicalRecordNumberRecognizer(), text)


@pytest.mark.parametrize(
    ("field", "reported"), [("mrn", True), ("patient_id", True), ("order_id", False)]
)
def test_medical_record_number_field_is_context(field: str, reported: bool) -> None:
    assert (
        found(MedicalRecordNumberRecognizer(), "00123456", "00123456", 0.6, field=field) is reported
    )
