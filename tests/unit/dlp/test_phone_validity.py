"""`hub.dlp.phone_validity.is_valid` gives libphonenumber's own verdict —
``is_valid_number(parse(candidate, region))`` — on every candidate the phone pattern finds,
on random candidates and on libphonenumber's example numbers of every region."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest

from bench.dlp_corpus import generate
from hub.dlp.phone_validity import UNPARSEABLE, is_valid, parse_digits
from hub.dlp.recognizers.phone import PhoneRecognizer
from tests.unit.dlp.scan_helpers import table_texts

REGIONS = (None, "US", "GB", "DE", "FR", "NL", "IT", "IN", "ES", "CA", "AU", "BR", "CH", "SG")
PATTERN = re.compile(PhoneRecognizer.patterns[0].regex)


def libphonenumber(candidate: str, region: str | None) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)))
    except phonenumbers.NumberParseException:
        return False


def _random_candidates(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    heads = ("", "", "+", "(", "00", "+1", "+44", "0", "011", "+7", "+39 0", "1", "+800 ")
    out = []
    for _ in range(count):
        text = rng.choice(heads)
        for digit in (rng.choice("0123456789") for _ in range(rng.randint(3, 17))):
            text += digit
            if rng.random() < 0.25:
                text += rng.choice((" ", "-", ".", ") ", " (", ")"))
        out.append(text.rstrip(" -.()") or "123")
    return out


def _examples() -> list[str]:
    """libphonenumber's own example numbers of every region, written three ways."""
    out: list[str] = []
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    formats = (
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.E164,
    )
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                out.extend(phonenumbers.format_number(example, f) for f in formats)
    return out


def _pattern_candidates() -> list[str]:
    texts = [t for t, _, _ in generate(300, seed=13).texts()] + table_texts()
    return sorted({m.group() for text in texts for m in PATTERN.finditer(text)})


@pytest.mark.parametrize(
    "candidates",
    [_pattern_candidates(), _random_candidates(2500, seed=1), _examples()],
    ids=["pattern candidates", "random", "libphonenumber examples"],
)
def test_is_valid_agrees_with_libphonenumber(candidates: list[str]) -> None:
    valid = 0
    for candidate in candidates:
        for region in REGIONS:
            expected = libphonenumber(candidate, region)
            assert is_valid(candidate, region) is expected, (candidate, region)
            valid += expected
    assert valid > len(candidates) // 10  # the sample holds valid numbers, not only junk


def _parsed(text: str, region: str | None) -> tuple[int, str]:
    """``phonenumbers.parse`` as (country code, national significant number)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return UNPARSEABLE
    assert number.country_code is not None  # parse sets it on every number it returns
    return number.country_code, phonenumbers.national_significant_number(number)


@pytest.mark.parametrize(
    "candidates",
    [_pattern_candidates(), _random_candidates(2500, seed=2), _examples()],
    ids=["pattern candidates", "random", "libphonenumber examples"],
)
def test_parse_digits_reads_what_libphonenumber_reads(candidates: list[str]) -> None:
    """The replayed parse gives the library's country code and national significant number
    (leading zeros included), and fails where it fails, for every text it covers."""
    covered = unparseable = 0
    for candidate in candidates:
        for region in REGIONS:
            got = parse_digits(candidate, region)
            if got is None:
                continue
            covered += 1
            expected = _parsed(candidate, region)
            assert got == expected, (candidate, region)
            unparseable += expected == UNPARSEABLE
    assert covered > len(candidates) * len(REGIONS) // 2
    assert 0 < unparseable < covered


def test_other_input_goes_to_libphonenumber() -> None:
    for text in ("tel:+1-415-555-2671", "+1 415 555 2671 ext. 12", "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨"):
        assert is_valid(text, None) is libphonenumber(text, None)
        assert parse_digits(text, None) is None


def test_text_longer_than_parse_reads_is_left_to_libphonenumber() -> None:
    """parse refuses input over 250 characters, however few digits it holds."""
    text = "+44 20" + " " * 250 + "7946 0958"
    assert _parsed(text, None) == UNPARSEABLE
    assert parse_digits(text, None) is None
    assert is_valid(text, None) is False
    assert parse_digits("+44 20 7946 0958", None) == (44, "2079460958")
