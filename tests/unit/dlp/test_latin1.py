"""`hub.dlp.latin1.specialised` patterns match exactly what the originals match on Latin-1
text — every recognizer's pattern, the phone validator's shapes and phonenumbers' metadata
patterns — and the matcher's Latin-1 shortcuts hold."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest

from bench.dlp_corpus import generate
from hub.dlp import registry
from hub.dlp.hyperscan_matcher import _joined
from hub.dlp.latin1 import is_latin1, specialised
from hub.dlp.prefilter import NUL
from hub.dlp.recognizers.phone import _NOT_A_PHONE

PATTERNS = [p.regex for r in registry.load() for p in r.patterns] + [str(_NOT_A_PHONE.pattern)]
CORPUS = [text for text, _, _ in generate(150, seed=11).texts()]


def _random_latin1(count: int, seed: int) -> list[str]:
    """Texts of digits, separators and the Latin-1 characters the Unicode classes hold
    or not (\\x1c-\\x1f and \\x85 are spaces, \\xa0 too; ² and ½ are word characters, not
    digits; ª and µ are letters)."""
    rng = random.Random(seed)
    alphabet = "0123456789 -./()+@_%:,#$aZ\n\t\x1c\x1f\x85\xa0\xb2\xb9\xbd\xaa\xb5\xc9\xe9\xff\xd7"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(count)]


RANDOM = _random_latin1(3000, seed=3)


@pytest.mark.parametrize("regex", PATTERNS)
def test_specialised_pattern_matches_what_the_original_does(regex: str) -> None:
    original, fast = re.compile(regex), specialised(regex)
    assert fast.pattern is None  # rewritten: every pattern here can be
    for text in CORPUS + RANDOM:
        if is_latin1(text):
            expected = [m.span() for m in original.finditer(text)]
            assert [m.span() for m in fast.finditer(text)] == expected, text


def test_specialised_metadata_patterns_match_digit_strings() -> None:
    """phonenumbers' patterns, which the phone replay runs on ASCII digit strings."""
    rng = random.Random(7)
    numbers = ["".join(rng.choice("0123456789") for _ in range(n)) for n in range(2, 18)] * 20
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)[:60]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        desc = metadata.general_desc if metadata is not None else None
        if desc is None or not desc.national_number_pattern:
            continue
        original = re.compile(desc.national_number_pattern)
        fast = specialised(desc.national_number_pattern)
        for number in numbers:
            assert bool(fast.fullmatch(number)) == bool(original.fullmatch(number)), region
            checked += 1
    assert checked > 10_000


def test_patterns_with_flags_are_left_as_they_are() -> None:
    assert specialised(r"(?i)\d+k").pattern == r"(?i)\d+k"
    assert specialised(r"(?a:\w)+").pattern == r"(?a:\w)+"


def test_is_latin1() -> None:
    assert all(map(is_latin1, ["", "abc", "Müller ÿ"]))
    assert not any(map(is_latin1, ["Müller ☎", "\u0100"]))


def test_no_other_decimal_digit_is_latin1() -> None:
    """The matcher skips its search for decimal digits other than 0-9 in a Latin-1 batch."""
    assert not [c for c in range(0x80, 0x100) if chr(c).isdecimal()]


@pytest.mark.parametrize(
    "texts",
    [["plain", "ascii"], ["Müller", "née", "x"], ["Müller ☎ 😀", "ok", "ž ß"], ["", "é"]],
)
def test_joined_scans_each_non_ascii_character_as_the_stand_in(texts: list[str]) -> None:
    data, starts, latin1 = _joined(texts)
    buffer = NUL + NUL.join(texts) + NUL
    assert data == buffer.encode("ascii", "hub-dlp-stand-in")
    assert latin1 == all(max(t, default="a") < "\u0100" for t in texts)
    assert [data[s : s + len(t)] for s, t in zip(starts, texts, strict=True)] == [
        t.encode("ascii", "hub-dlp-stand-in") for t in texts
    ]
