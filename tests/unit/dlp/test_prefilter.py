"""What the hyperscan matcher runs in place of each exact pattern: boundaries consumed
instead of dropped, reach measured past lookaheads, non-ASCII characters as one stand-in
byte, context words in every case form. Each prefilter must match wherever the exact
pattern does (checked on the recognizers' own patterns against hyperscan itself)."""

from __future__ import annotations

import random
import re

import hyperscan
import pytest

from hub.dlp import registry
from hub.dlp.hyperscan_matcher import _lower_sources, context_literal
from hub.dlp.prefilter import STAND_IN, bounded_prefilter, max_width, min_width, reach
from tests.unit.dlp.scan_helpers import table_texts

PATTERNS = [(r.name, p) for r in registry.load() for p in r.patterns]


def _compile(expression: str) -> hyperscan.Database:
    db = hyperscan.Database()
    db.compile(
        expressions=[expression.encode()],
        ids=[0],
        elements=1,
        flags=[hyperscan.HS_FLAG_SOM_LEFTMOST],
    )
    return db


def _spans(db: hyperscan.Database, text: str) -> set[tuple[int, int]]:
    """(start, end) of every match, offsets into `text` (scanned between NULs)."""
    data = ("\x00" + text + "\x00").encode("ascii", "hub-dlp-stand-in")
    found: set[tuple[int, int]] = set()
    db.scan(data, match_event_handler=lambda _i, s, e, _f, _c: found.add((s - 1, e - 1)))
    return found


@pytest.mark.parametrize(
    ("regex", "expression", "lead", "trail"),
    [
        # leading lookbehind over one character, trailing lookahead: both consumed
        (r"(?<![\w\-])\d{8,17}(?![\w\-])", r"[^A-Za-z0-9_\-][0-9]{8,}[^A-Za-z0-9_\-]", True, True),
        # lookbehind placed after the first character, over it and the one before
        (r"[0-9](?<![\w.+-][0-9])[0-9]{3}", r"[^A-Za-z0-9_\.\+\-][0-9][0-9]{3}", True, False),
        # after a fixed-width literal prefix
        (r"ab(?<![a-z]..)c", r"[^a-z]abc", True, False),
        # a wider lookbehind is dropped; the one-character alternative of a lookahead kept
        (r"(?<!\d[.,])x(?![\w]|\.\d)", r"x[^A-Za-z0-9_]", False, True),
        # inner lookarounds are stripped, long bounded repeats widened
        (r"a(?=b)[bc]{2,40}d", r"a[bc]{2,}d", False, False),
        # a non-ASCII character matches its stand-in; it is never excluded
        (r"(?<![é\w])né", r"[^A-Za-z0-9_]n\x{1}", True, False),
    ],
)
def test_bounded_prefilter(regex: str, expression: str, lead: bool, trail: bool) -> None:
    bounded = bounded_prefilter(regex)
    assert (bounded.expression, bounded.lead, bounded.trail) == (expression, lead, trail)
    _compile(bounded.expression)


def test_reach_counts_lookaheads_where_they_look() -> None:
    assert reach(r"(?=\d{5})\d{3}") == 5  # a lookahead at the start looks past the match
    assert reach(r"\d{3}(?!\d)") == 4
    assert reach(r"a+(?=b)") > 2**30  # unbounded
    assert reach(r"a{2}(?=b{3})") == 5
    assert (max_width(r"a{2,5}"), min_width(r"a{2,5}")) == (5, 2)


def _words(rng: random.Random) -> str:
    pieces = [
        "4111 1111 1111 1111",
        "536-22-1234",
        "+1 415 555 2671",
        "DE89 3704 0044 0532 0130 00",
    ]
    pieces += ["é", "ß", "\u00a0", "\u212a", "İ", "x", "-", ".", "/", ":", "@", "a@b.co", " "]
    pieces += [str(rng.randint(0, 10**12)) for _ in range(5)]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))


TEXTS = table_texts() + [_words(random.Random(seed)) for seed in range(300)]


@pytest.mark.parametrize(("owner", "pattern"), PATTERNS, ids=lambda x: getattr(x, "name", x))
def test_prefilter_matches_wherever_the_pattern_does(owner: str, pattern: object) -> None:
    """Every match of the exact pattern is a match of what hyperscan runs, from one
    character before it (when a boundary is consumed) to one after."""
    regex = pattern.regex  # type: ignore[attr-defined]
    bounded = bounded_prefilter(pattern.prefilter or regex)  # type: ignore[attr-defined]
    db = _compile(bounded.expression)
    compiled = re.compile(regex)
    for text in TEXTS:
        if re.search(r"[^\D0-9]", text):
            continue  # non-ASCII decimal digits: the matcher scans such texts whole
        found = _spans(db, text)
        ends = {end for _, end in found}
        for m in compiled.finditer(text):
            end = m.end() + bounded.trail
            assert end in ends, (owner, text, m.group())
            assert any(s <= m.start() - bounded.lead for s, e in found if e == end), (owner, text)


@pytest.mark.parametrize(
    ("word", "text"),
    [
        ("ssn", "SSN"),
        ("key", "\u212aEY"),  # Kelvin sign lowers to k
        ("chi", "CHİ"),  # dotted capital I lowers to i + combining dot
        ("identificación", "IDENTIFICACIÓN"),
        ("date of birth", "Date Of BIRTH"),  # a phrase: its longest word
    ],
)
def test_context_literal_finds_every_case_form(word: str, text: str) -> None:
    db = _compile(context_literal(word))
    assert _spans(db, text)
    assert not _spans(db, "nothing of the kind")


def test_lower_sources_are_every_character_that_lower_cases_to_one() -> None:
    """The block-skipping inversion of str.lower equals the plain one over all of Unicode."""
    plain: dict[str, set[str]] = {}
    for code in range(0x110000):
        ch = chr(code)
        if ch.lower() != ch:
            plain.setdefault(ch.lower()[0], set()).add(ch)
    assert _lower_sources() == {k: "".join(sorted(v)) for k, v in plain.items()}
    assert "\u212a" in _lower_sources()["k"]  # Kelvin sign, outside Latin-1


def test_stand_in_is_one_byte_per_character() -> None:
    text = "Müller ☎ 😀 ok"
    data = text.encode("ascii", "hub-dlp-stand-in")
    assert len(data) == len(text)
    assert data.decode().replace(STAND_IN, "?") == "M?ller ? ? ok"
