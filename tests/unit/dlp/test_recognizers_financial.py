"""Credit card, IBAN, ABA routing and US bank account recognizers: must-match and
must-not-match tables, scanned with the reference scan at the usual 0.5 threshold."""

from __future__ import annotations

import re

import pytest
from stdnum import iban as stdnum_iban
from stdnum import numdb

from hub.dlp.base import scan_reference
from hub.dlp.recognizers.aba_routing import AbaRoutingRecognizer
from hub.dlp.recognizers.credit_card import CreditCardRecognizer
from hub.dlp.recognizers.iban import IBAN_LENGTHS, IbanRecognizer
from hub.dlp.recognizers.us_bank_account import UsBankAccountRecognizer
from tests.unit.dlp.scan_helpers import COMMON_HARD_NEGATIVES, THRESHOLD
from tests.unit.dlp.scan_helpers import spans as found


def luhn_complete(body: str) -> str:
    """`body` plus the Luhn check digit that makes it valid."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def aba_complete(first8: str) -> str:
    """`first8` plus the ABA 3-7-1 check digit."""
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    total = sum(w * int(ch) for w, ch in zip(weights, first8, strict=True))
    return first8 + str((10 - total % 10) % 10)


# Values no financial recognizer may report without context (and most not even with it).
HARD_NEGATIVES = [
    *COMMON_HARD_NEGATIVES,
    "invoice no. 2024000123",
    "call 415-555-2671",
]

# -- credit card ---------------------------------------------------------------------------

CARD = CreditCardRecognizer()
MC_2_SERIES = luhn_complete("222100000000000")
UNIONPAY = luhn_complete("621234567890123")
VISA_19 = luhn_complete("411111111111111111")
LUHN_OK_NO_ISSUER = luhn_complete("123456789012345")  # prefix 1: no issuer
AMEX_WRONG_LENGTH = luhn_complete("371449635398431")  # Amex range, but 16 digits

CARD_MATCH = [
    ("Card: 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111", 1.0),
    ("paid with 5500-0000-0000-0004.", "5500-0000-0000-0004", 1.0),
    ("amex 3782 822463 10005 on file", "3782 822463 10005", 1.0),
    ("4111111111111111", "4111111111111111", 1.0),
    ("card# 4111111111111111", "4111111111111111", 1.0),
    ("card #4111 1111 1111 1111", "4111 1111 1111 1111", 1.0),
    ("visa 4222222222222 (13 digits)", "4222222222222", 1.0),
    (f"mc {MC_2_SERIES}", MC_2_SERIES, 1.0),
    ("discover 6011 1111 1111 1117", "6011 1111 1111 1117", 1.0),
    ("jcb 3530111333300000", "3530111333300000", 1.0),
    ("diners 3056 930902 5904", "3056 930902 5904", 1.0),
    (f"unionpay {UNIONPAY}", UNIONPAY, 1.0),
    (
        f"visa {VISA_19[:4]} {VISA_19[4:8]} {VISA_19[8:12]} {VISA_19[12:16]} {VISA_19[16:]}",
        f"{VISA_19[:4]} {VISA_19[4:8]} {VISA_19[8:12]} {VISA_19[12:16]} {VISA_19[16:]}",
        1.0,
    ),
]

CARD_NOT_MATCH = [
    *HARD_NEGATIVES,
    "card 4111 1111 1111 1112",  # Luhn fails
    "card 4111-1111 1111-1111",  # mixed separators
    "card 41111 1111 1111 111",  # not a card layout
    f"card {LUHN_OK_NO_ISSUER}",  # Luhn ok, no issuer starts with 1
    f"card {AMEX_WRONG_LENGTH}",  # Amex range, wrong length
    "card 0000 0000 0000 0000",
    "tel +4111111111111111",  # glued to '+': a phone-like token
    "ref 94111111111111111111",  # longer digit run
    "amount 4111111111111111.50",  # glued to a decimal part
    "ratio 0.4111111111111111",
    "Order #4111111111111111 shipped",  # Luhn-valid, but '#' marks an order id
]


@pytest.mark.parametrize(("text", "expected", "min_score"), CARD_MATCH)
def test_credit_card_matches(text: str, expected: str, min_score: float) -> None:
    assert found(CARD, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", CARD_NOT_MATCH)
def test_credit_card_does_not_match(text: str) -> None:
    assert found(CARD, text) == {}


def test_credit_card_field_name_is_context() -> None:
    f = next(scan_reference(CARD, "4111111111111111", field="payment.card_number"))
    assert f.context_word == "field name"
    assert f.validated


# -- IBAN ----------------------------------------------------------------------------------

IBAN = IbanRecognizer()
# mod-97 is right, but a GB BBAN starts with a four-letter bank code, not digits.
_GB_DIGITS_ONLY = "GB{}123412345698765432"
GB_BAD_STRUCTURE = _GB_DIGITS_ONLY.format(
    stdnum_iban.calc_check_digits(_GB_DIGITS_ONLY.format("00"))
)

IBAN_MATCH = [
    ("pay to GB82 WEST 1234 5698 7654 32 today", "GB82 WEST 1234 5698 7654 32", 1.0),
    ("DE89 3704 0044 0532 0130 00 EUR", "DE89 3704 0044 0532 0130 00", 1.0),
    ("iban:DE89370400440532013000", "DE89370400440532013000", 1.0),
    ("NL91ABNA0417164300", "NL91ABNA0417164300", 1.0),
    ("FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606", 1.0),
    ("BE31 4354 1116 1155 EUR", "BE31 4354 1116 1155", 1.0),  # length a multiple of 4
    ("NO93 8601 1117 947", "NO93 8601 1117 947", 1.0),
    # mod-97 and layout are right; the Belgian inner account check is not applied
    ("BE68 5390 0754 7034", "BE68 5390 0754 7034", 1.0),
]

IBAN_NOT_MATCH = [
    *HARD_NEGATIVES,
    "DE89 3704 0044 0532 0130 01",  # mod-97 fails
    "GB82 WEST 1234 5698 7654 33",  # mod-97 fails
    "DE89 3704 0044 0532 0130",  # too short for DE
    "DE89370400440532013000123",  # too long for DE
    "XX82 WEST 1234 5698 7654 32",  # no such country
    GB_BAD_STRUCTURE,  # mod-97 ok, BBAN structure wrong
    "GB82WEST1234 5698 7654 32",  # half grouped
    "ISBN-DE89370400440532013000",  # glued to a word
]


@pytest.mark.parametrize(("text", "expected", "min_score"), IBAN_MATCH)
def test_iban_matches(text: str, expected: str, min_score: float) -> None:
    assert found(IBAN, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", IBAN_NOT_MATCH)
def test_iban_does_not_match(text: str) -> None:
    assert found(IBAN, text) == {}


def _registry_length(country: str) -> int:
    props = dict(numdb.get("iban").info(country)[0][1])
    return 4 + sum(int(n) for n in re.findall(r"(\d+)!", props["bban"]))


@pytest.mark.parametrize("country", sorted(IBAN_LENGTHS))
def test_iban_length_table_agrees_with_registry(country: str) -> None:
    assert IBAN_LENGTHS[country] == _registry_length(country)


# -- ABA routing number --------------------------------------------------------------------

ABA = AbaRoutingRecognizer()
FED_BOSTON = aba_complete("01100001")
THRIFT = aba_complete("32107654")
ELECTRONIC = aba_complete("61000010")

ABA_MATCH = [
    ("routing number 021000021", "021000021", 0.75),
    (f"ABA {FED_BOSTON}", FED_BOSTON, 0.75),
    (f"RTN: {THRIFT}.", THRIFT, 0.75),
    (f"wire via routing {ELECTRONIC}", ELECTRONIC, 0.75),
    (
        f"routing {FED_BOSTON[:4]}-{FED_BOSTON[4:8]}-{FED_BOSTON[8]}",
        f"{FED_BOSTON[:4]}-{FED_BOSTON[4:8]}-{FED_BOSTON[8]}",
        0.75,
    ),
]

ABA_NOT_MATCH = [
    *HARD_NEGATIVES,
    "021000021",  # checksum ok but one check digit is weak evidence: needs context
    "ref 021000021 attached",
    "routing 021000022",  # checksum fails
    f"routing {aba_complete('13000000')}",  # prefix 13 is not a Fed district
    f"routing {aba_complete('50000000')}",  # prefix 50 neither
    "routing 000000000",  # passes the checksum, but is all zeros
    "routing 0210000210",  # ten digits
]


@pytest.mark.parametrize(("text", "expected", "min_score"), ABA_MATCH)
def test_aba_matches(text: str, expected: str, min_score: float) -> None:
    assert found(ABA, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", ABA_NOT_MATCH)
def test_aba_does_not_match(text: str) -> None:
    assert found(ABA, text) == {}


def test_aba_without_context_is_a_weak_validated_candidate() -> None:
    (f,) = scan_reference(ABA, "021000021")
    assert f.validated
    assert f.score == ABA.validated_score < THRESHOLD


@pytest.mark.parametrize(
    ("field", "is_found"),
    [("routing_number", True), ("bank.aba", True), ("order_id", False), ("ssn", False)],
)
def test_aba_field_context(field: str, is_found: bool) -> None:
    assert bool(found(ABA, "021000021", field=field)) is is_found


# -- US bank account -----------------------------------------------------------------------

BANK = UsBankAccountRecognizer()

BANK_MATCH = [
    ("checking account 000123456789", "000123456789", 0.65),
    ("acct # 12345678", "12345678", 0.65),
    ("savings: 9876543210123", "9876543210123", 0.65),
    ("deposit to bank account 12345678901234567", "12345678901234567", 0.65),
]

BANK_NOT_MATCH = [
    *HARD_NEGATIVES,
    "12345678901",  # no context
    "account 1111111111",  # one repeated digit
    "account opened 20240305",  # a date
    "account 1234567",  # seven digits
    "account 123456789012345678",  # eighteen digits
    "account 12345-678901",  # not one run
]


@pytest.mark.parametrize(("text", "expected", "min_score"), BANK_MATCH)
def test_bank_account_matches(text: str, expected: str, min_score: float) -> None:
    assert found(BANK, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", BANK_NOT_MATCH)
def test_bank_account_does_not_match(text: str) -> None:
    assert found(BANK, text) == {}


@pytest.mark.parametrize(
    ("field", "is_found"),
    [("bank_account_number", True), ("AccountNo", True), ("order_id", False), (None, False)],
)
def test_bank_account_field_context(field: str | None, is_found: bool) -> None:
    assert bool(found(BANK, "9876543210123", field=field)) is is_found


def test_bank_account_is_context_gated_at_any_threshold() -> None:
    assert list(scan_reference(BANK, "ref 9876543210123", min_score=0.0)) == []
