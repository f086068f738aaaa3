"""Table-driven tests for the national-id recognizers: UK NHS, NL BSN, ES NIF/NIE,
IT codice fiscale, FR NIR, DE IdNr and US driver licence.

Valid identifiers are either python-stdnum's documented examples or computed here with the
check-digit rule written out independently of the recognizer; none belongs to a person."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from hub.dlp import registry
from hub.dlp.base import scan_reference
from hub.dlp.engine import Engine
from hub.dlp.recognizers.de_tax_id import DeTaxIdRecognizer
from hub.dlp.recognizers.es_nif import EsNifRecognizer
from hub.dlp.recognizers.fr_nir import FrNirRecognizer
from hub.dlp.recognizers.it_fiscal_code import ItFiscalCodeRecognizer
from hub.dlp.recognizers.nl_bsn import NlBsnRecognizer
from hub.dlp.recognizers.uk_nhs import UkNhsRecognizer
from hub.dlp.recognizers.us_driver_license import UsDriverLicenseRecognizer
from tests.unit.dlp.scan_helpers import THRESHOLD, nothing
from tests.unit.dlp.scan_helpers import reports as found


def _nhs(nine: str) -> str:
    """Ten-digit NHS number for a nine-digit stem (stems chosen so the check is not 10)."""
    weighted = sum(int(d) * w for d, w in zip(nine, (10, 9, 8, 7, 6, 5, 4, 3, 2), strict=True))
    check = (11 - weighted % 11) % 11
    assert check != 10, "pick another stem"
    return nine + str(check)


def _bad_last(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def _bsn(eight: str) -> str:
    """Nine-digit BSN for an eight-digit stem: sum(d_i * (9..2)) - d_9 ≡ 0 (mod 11)."""
    weighted = sum(int(d) * w for d, w in zip(eight, range(9, 1, -1), strict=True))
    check = weighted % 11
    assert check != 10, "pick another stem"
    return eight + str(check)


def _spaced_3_3_4(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


NHS_A = _nhs("999000001")
NHS_B = _nhs("999123457")
BSN_A = "111222333"  # stdnum's documented example
BSN_B = _bsn("12345678")
BSN_B_DOTTED = f"{BSN_B[:4]}.{BSN_B[4:6]}.{BSN_B[6:]}"


def _check_values() -> None:
    # the computed fixtures are what they claim (guards the helpers above)
    assert BSN_B.isdigit()
    assert len(BSN_B) == 9
    assert len(NHS_A) == 10


_check_values()

# -- UK NHS ------------------------------------------------------------------------------
NHS_MATCH = [
    (f"NHS number: {_spaced_3_3_4(NHS_A)}", _spaced_3_3_4(NHS_A), 1.0),
    (f"ref {_spaced_3_3_4(NHS_B)} seen", _spaced_3_3_4(NHS_B), 1.0),
    (f"nhs no {NHS_A[:3]}-{NHS_A[3:6]}-{NHS_A[6:]}.", f"{NHS_A[:3]}-{NHS_A[3:6]}-{NHS_A[6:]}", 1.0),
    (f"NHS {NHS_B}", NHS_B, 0.7),  # bare needs context
]
NHS_NOT = [
    _spaced_3_3_4(_bad_last(NHS_A)),  # invalid checksum
    f"NHS number {_bad_last(NHS_B)}",
    NHS_A,  # bare, no context: could be a phone number or epoch seconds
    "created 1709648521",  # epoch seconds
    "ts 1709648521000",  # epoch millis
    "order 4000000017",
    "v2.14.3",
    "ZIP 94105-1234",
    "ISBN 978-3-16-148410-0",
    "NHS 000 000 0000",
    f"+44 {_spaced_3_3_4(NHS_A)}",  # a phone number with country code is not an NHS number
    f"amount {NHS_A}.25",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), NHS_MATCH)
def test_uk_nhs_matches(text: str, expected: str, min_score: float) -> None:
    assert found(UkNhsRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", NHS_NOT)
def test_uk_nhs_does_not_match(text: str) -> None:
    assert nothing(UkNhsRecognizer(), text)


def test_uk_nhs_bare_digits_found_in_nhs_field() -> None:
    assert found(UkNhsRecognizer(), NHS_A, NHS_A, 0.7, field="patient.nhs_number")
    assert nothing(UkNhsRecognizer(), NHS_A, field="phone")


def _nhs_that_dial(count: int) -> list[str]:
    """Ten-digit numbers that pass the NHS check and that libphonenumber holds valid US
    phone numbers: one valid US number in eleven is one."""
    rng = random.Random(4)
    found: list[str] = []
    while len(found) < count:
        nine = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 999):03d}"
        weighted = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
        check = (11 - weighted % 11) % 11
        number = nine + str(check)
        if check != 10 and phonenumbers.is_valid_number(phonenumbers.parse(number, "US")):
            found.append(number)
    return found


DIALLABLE = [
    layout.format(n[:3], n[3:6], n[6:])
    for i, n in enumerate(_nhs_that_dial(40))
    for layout in (("{} {} {}", "{}-{}-{}")[i % 2],)
]
ENGINE = Engine(registry.load())


def _labels(text: str) -> list[tuple[str, str]]:
    return [(text[f.start : f.end], f.entity) for f in ENGINE.scan_text(text, min_score=THRESHOLD)]


@pytest.mark.parametrize("number", DIALLABLE)
def test_the_nearest_context_decides_between_phone_and_nhs(number: str) -> None:
    """A 3-3-4 number that passes the NHS check and dials in North America: phone context
    makes it a phone, NHS context an NHS number; with both near, the nearer word decides,
    and a word before the value beats any after it (the label of the next value). Alone,
    it is the stricter NHS number (both are protected either way)."""
    other = DIALLABLE[(DIALLABLE.index(number) + 1) % len(DIALLABLE)]  # dials too
    bare = number.replace(" ", "").replace("-", "")
    assert _labels(f"call me at {number} after 5") == [(number, "PHONE_NUMBER")]
    assert _labels(f"Mobile: {number}") == [(number, "PHONE_NUMBER")]
    assert _labels(f"{number} is my mobile") == [(number, "PHONE_NUMBER")]
    assert _labels(f"NHS number {number}") == [(number, "UK_NHS")]
    assert _labels(f"ref {number}") == [(number, "UK_NHS")]
    assert _labels(f"NHS no {other}, phone {number}") == [
        (other, "UK_NHS"),
        (number, "PHONE_NUMBER"),
    ]
    assert _labels(f"call me on 020 7946 0120. NHS number {number}.") == [
        ("020 7946 0120", "PHONE_NUMBER"),
        (number, "UK_NHS"),
    ]
    # the label after a value is the next value's
    assert _labels(f"NHS number: {number}\nPhone: 020 7946 0120") == [
        (number, "UK_NHS"),
        ("020 7946 0120", "PHONE_NUMBER"),
    ]
    assert _labels(f"nhs: {number} text me") == [(number, "UK_NHS")]
    # bare digits: a phone only where the phone recognizer takes the same span
    assert _labels(f"NHS no {other}, call {bare}") == [(other, "UK_NHS"), (bare, "PHONE_NUMBER")]
    assert _labels(f"NHS no:{bare} call me") == [(bare, "UK_NHS")]
    # a field's name decides, whatever the words in it
    found = ENGINE.scan_text(f"call {number}", field="nhs_number", min_score=THRESHOLD)
    assert [(f.entity, f.score) for f in found] == [("UK_NHS", 1.0)]
    for field in ("phone", "contact.mobile"):
        found = ENGINE.scan_text(number, field=field, min_score=THRESHOLD)
        assert [(f.entity, f.score) for f in found] == [("PHONE_NUMBER", 0.9)]
        # an NHS word in a phone field beats the field, a nearer phone word beats it
        found = ENGINE.scan_text(f"NHS number {number}", field=field, min_score=THRESHOLD)
        assert [f.entity for f in found] == ["UK_NHS"]
        text = f"NHS no {other}, mobile {number}"
        found = ENGINE.scan_text(text, field=field, min_score=THRESHOLD)
        assert [(text[f.start : f.end], f.entity) for f in found] == [
            (other, "UK_NHS"),
            (number, "PHONE_NUMBER"),
        ]


def test_rescore_only_lowers_what_the_phone_recognizer_takes_instead() -> None:
    nhs = UkNhsRecognizer()
    number = DIALLABLE[0]
    text = f"call {number}"
    at = text.index(number)
    assert nhs.rescore(text, at, len(text), 1.0, None, None) == 0.4
    assert nhs.rescore(text, at, len(text), 1.0, "field name", "nhs") == 1.0
    assert nhs.rescore(number, 0, len(number), 1.0, None, "work_phone") == 0.4
    assert nhs.rescore(number, 0, len(number), 1.0, None, "notes") == 1.0
    plain = f"call {_spaced_3_3_4(NHS_A)}"  # 999 is no area code
    assert nhs.rescore(plain, 5, len(plain), 1.0, None, None) == 1.0
    glued = f"call #{number}"  # the phone pattern does not start after "#"
    assert nhs.rescore(glued, 6, len(glued), 1.0, None, None) == 1.0
    labelled = f"NHS number {number}"
    assert nhs.rescore(labelled, 11, len(labelled), 1.0, "nhs", "phone") == 1.0


def test_without_a_phone_recognizer_a_dialling_nhs_number_keeps_its_score() -> None:
    """The lowering hands the number to the phone recognizer: an engine without one
    (a policy scanning for NHS numbers only) keeps it an NHS number."""
    text = f"call {DIALLABLE[0]}"
    alone = Engine([UkNhsRecognizer()]).scan_text(text, min_score=0.0)
    assert [(f.entity, f.score) for f in alone] == [("UK_NHS", 1.0)]
    assert [f.score for f in scan_reference(UkNhsRecognizer(), text, beside=())] == [1.0]
    assert [f.score for f in scan_reference(UkNhsRecognizer(), text)] == [0.4]
    assert [f.score for f in ENGINE.scan_text_all(text) if f.entity == "UK_NHS"] == [0.4]


# -- NL BSN ------------------------------------------------------------------------------
BSN_MATCH = [
    ("BSN: 111222333", BSN_A, 0.7),
    ("burgerservicenummer 1112.22.333", "1112.22.333", 1.0),
    (f"klant {BSN_B_DOTTED} gevonden", BSN_B_DOTTED, 1.0),  # dotted form needs no context
    (f"sofinummer {BSN_B}.", BSN_B, 0.7),
]
BSN_NOT = [
    "1112.52.333",  # stdnum's invalid-checksum example
    "BSN 111222334",
    BSN_A,  # bare nine digits without context
    f"Order #{BSN_B}",
    "BSN 1112223334",  # ten digits
    "BSN 000000000",
    "created 1709648521000",
    "v2.14.3",
    "ZIP 94105-1234",
    "ISBN 978-3-16-148410-0",
    "2024-03-05 14:22:01",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), BSN_MATCH)
def test_nl_bsn_matches(text: str, expected: str, min_score: float) -> None:
    assert found(NlBsnRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", BSN_NOT)
def test_nl_bsn_does_not_match(text: str) -> None:
    assert nothing(NlBsnRecognizer(), text)


@pytest.mark.parametrize(
    ("field", "reported"),
    [("bsn", True), ("klant.BSN", True), ("Burgerservicenummer", True), ("invoice", False)],
)
def test_nl_bsn_bare_digits_need_a_bsn_field(field: str, reported: bool) -> None:
    assert found(NlBsnRecognizer(), BSN_B, BSN_B, 0.7, field=field) is reported


def test_nl_bsn_bare_valid_digits_are_validated_but_below_threshold() -> None:
    (finding,) = scan_reference(NlBsnRecognizer(), BSN_A)
    assert finding.validated
    assert finding.score < THRESHOLD


# -- ES NIF / NIE --------------------------------------------------------------------------
NIF_MATCH = [
    ("DNI 54362315K", "54362315K", 1.0),  # stdnum examples
    ("nif: 54362315-K", "54362315-K", 1.0),
    ("NIE X-5253868-R", "X-5253868-R", 1.0),
    ("x2482300w", "x2482300w", 1.0),
    ("titular M-1234567-L firma", "M-1234567-L", 1.0),
]
NIF_NOT = [
    "DNI 54362315Z",  # invalid check letter
    "NIE x-2482300a",
    "X2482300",  # letter missing
    "54362315",
    "order 20240305A",
    "SKU 12345678B",
    "B64717838",  # a company CIF: not a person
    "v2.14.3",
    "ISBN 978-3-16-148410-0",
    "ZIP 94105-1234",
    "run-54362315K",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), NIF_MATCH)
def test_es_nif_matches(text: str, expected: str, min_score: float) -> None:
    assert found(EsNifRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", NIF_NOT)
def test_es_nif_does_not_match(text: str) -> None:
    assert nothing(EsNifRecognizer(), text)


# -- IT codice fiscale -----------------------------------------------------------------------
CF_MATCH = [
    ("codice fiscale RCCMNL83S18D969H", "RCCMNL83S18D969H", 1.0),  # stdnum examples
    ("CF: CNTCHR83T41D969D.", "CNTCHR83T41D969D", 1.0),
    ("rccmnl83s18d969h", "rccmnl83s18d969h", 1.0),
]
CF_NOT = [
    "RCCMNL83S18D969A",  # wrong check letter
    "RCCMNL83S18D969",  # fifteen characters
    "RCCMNL83Z18D969H",  # Z is not a month letter
    "RCCMNL83S78D969H",  # day 78 is not a day (or 38 + 40)
    "ABCDEFGHIJKLMNOP",
    "v2.14.3",
    "550e8400-e29b-41d4-a716-446655440000",
    "XRCCMNL83S18D969H",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), CF_MATCH)
def test_it_fiscal_code_matches(text: str, expected: str, min_score: float) -> None:
    assert found(ItFiscalCodeRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", CF_NOT)
def test_it_fiscal_code_does_not_match(text: str) -> None:
    assert nothing(ItFiscalCodeRecognizer(), text)


# -- FR NIR --------------------------------------------------------------------------------
NIR_MATCH = [
    ("NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", 1.0),  # stdnum examples
    ("sécu: 295109912611193", "295109912611193", 1.0),
    ("253072B07300470", "253072B07300470", 1.0),
    ("n° 253072A07300443 ok", "253072A07300443", 1.0),
]
NIR_NOT = [
    "295109912611199",  # invalid key
    "253072C07300443",  # 2C is not a department
    "2 95 10 99 126 111 9",
    "295139912611110",  # month 13 (key recomputed would still fail)
    "1709648521000 12",
    "ts 1709648521000",
    "v2.14.3",
    "ISBN 978-3-16-148410-0",
    "ZIP 94105-1234",
    "2024-03-05 14:22:01",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), NIR_MATCH)
def test_fr_nir_matches(text: str, expected: str, min_score: float) -> None:
    assert found(FrNirRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", NIR_NOT)
def test_fr_nir_does_not_match(text: str) -> None:
    assert nothing(FrNirRecognizer(), text)


def test_fr_nir_rejects_an_impossible_month_even_with_a_right_key() -> None:
    stem = "2951399126111"  # month 13
    key = f"{97 - int(stem) % 97:02d}"
    assert nothing(FrNirRecognizer(), stem + key)


# -- DE IdNr -------------------------------------------------------------------------------
IDNR_MATCH = [
    ("Steuer-ID 36 574 261 809", "36 574 261 809", 1.0),  # stdnum example
    ("IdNr: 36574261809", "36574261809", 1.0),
    ("36574261809", "36574261809", 0.85),  # strong structure: reported without context
]
IDNR_NOT = [
    "36574261890",  # invalid check digit
    "36554266806",  # too many repeated digits
    "06574261809",  # leading zero
    "3657426180",
    "ts 1709648521000",
    "+49 36574261809",
    "v2.14.3",
    "ISBN 978-3-16-148410-0",
    "ZIP 94105-1234",
    "12345678901",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), IDNR_MATCH)
def test_de_tax_id_matches(text: str, expected: str, min_score: float) -> None:
    assert found(DeTaxIdRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", IDNR_NOT)
def test_de_tax_id_does_not_match(text: str) -> None:
    assert nothing(DeTaxIdRecognizer(), text)


def test_de_tax_id_field_raises_score() -> None:
    assert found(DeTaxIdRecognizer(), "36574261809", "36574261809", 1.0, field="steuer_id")


# -- US driver licence ---------------------------------------------------------------------
DL_MATCH = [
    ("Driver's license: D1234567", "D1234567", 0.6),
    ("CA DL A7654321", "A7654321", 0.6),
    ("licence no. A1234567890123", "A1234567890123", 0.6),
    ("DMV record 123456789", "123456789", THRESHOLD),
    ("Ohio driver license AB123456", "AB123456", THRESHOLD),
    ("WA driver licence WDLX12Y34Z56", "WDLX12Y34Z56", 0.6),
    ("WA license DOE**JM123AB", "DOE**JM123AB", 0.6),
    ("FL driver license S123-456-78-901-0", "S123-456-78-901-0", 0.6),
]
DL_NOT = [
    "D1234567",  # no context
    "order 12345678",
    "Invoice A7654321 paid",
    "license issued 20240305",  # a date
    "driver license 00000000",
    "MIT license v2.14.3",
    "licence ZIP 94105-1234",
    "license ISBN 978-3-16-148410-0",
    "license key 1709648521000",
    "license 550e8400-e29b-41d4-a716-446655440000",
    "driver 2024-03-05 14:22:01",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), DL_MATCH)
def test_us_driver_license_matches(text: str, expected: str, min_score: float) -> None:
    assert found(UsDriverLicenseRecognizer(), text, expected, min_score)


@pytest.mark.parametrize("text", DL_NOT)
def test_us_driver_license_does_not_match(text: str) -> None:
    assert nothing(UsDriverLicenseRecognizer(), text)


def test_us_driver_license_field_is_context() -> None:
    assert found(UsDriverLicenseRecognizer(), "D1234567", "D1234567", 0.6, field="driverLicense")
    assert nothing(UsDriverLicenseRecognizer(), "D1234567", field="sku")
