"""The engine finds, per recognizer, exactly what `scan_reference` finds — on every backend,
one text at a time or in batches — with character offsets, overlaps resolved to the
strongest finding, and declared fields reported whole."""

from __future__ import annotations

import bisect
import importlib
import random
import re
from collections import defaultdict
from typing import ClassVar

import pytest

from bench.dlp_corpus import generate
from hub.dlp import registry
from hub.dlp.base import Finding, Pattern, Recognizer, scan_reference
from hub.dlp.engine import Engine, _context_words, dedupe, prefilter, strip_lookarounds
from hub.dlp.hyperscan_matcher import HyperscanMatcher, _Collector, _joined
from tests.unit.dlp.scan_helpers import table_texts

BACKENDS = [b for b in ("hyperscan", "re2", "re") if b == "re" or importlib.util.find_spec(b)]
RECOGNIZERS = registry.load()
CORPUS = generate(150, seed=11)
TEXTS = [(text, field) for text, field, _ in CORPUS.texts()]
EXTRA = [  # edge cases the corpus does not hold
    ("Müller ☎ +49 30 1234567, Karte 4111 1111 1111 1111, Ž ssn 123-45-6789", None),
    ("123456789012345678901234567890 ORD-123456789 4111111111111111", "notes"),
    ("a" * 3 + "\n" + "ssn: 078-05-1121 and 219-09-9999 and 536-22-1234", "ssn"),
    ("", None),
]
_PEM_BODY = "MIIEowIBAAKCAQEA" * 6
UNICODE = [  # the matcher scans one stand-in byte for each non-ASCII character
    ("Kunde Müller, Tel. +49 30 1234567; é4111 1111 1111 1111é ß", None),
    ("\u0665\u0663\u0666-\u0662\u0662-\u0661\u0662\u0663\u0664 ssn 536-22-1234", None),
    ("SSN\u00a0536\u00a022\u00a01234 and DOB\u202f1984-03-05 ☎ +44\u00a020 7946 0958", None),
    ("\u212aEY ID AKIAZ3MSJV4WWNKWW5FG, İP 10.0.0.1, CLİENT 10.0.0.2, PATİENT İD A1234567", None),
    ("née le 05.03.1984 à Lyon; né le 5/3/1984; Geburtsdatum: 5. März 1984", None),
    ("Número de identificación fiscal 12345678Z; NIE X1234567L", None),
    (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + _PEM_BODY
        + "\u00a0\n"
        + _PEM_BODY
        + "\n-----END RSA PRIVATE KEY-----",
        None,
    ),
]


def _fuzz_texts(count: int, seed: int) -> list[str]:
    """Texts dense in what the patterns look for: digit groups with every separator,
    context words in any case, addresses, non-ASCII letters, glued and split tokens."""
    rng = random.Random(seed)
    words = [
        "ssn", "SSN", "phone", "Tel", "call", "account", "IBAN", "routing", "dob", "born",
        "passport", "MRN", "chart", "license", "DL", "bsn", "nhs", "card", "ip", "client",
        "Müller", "né", "über", "x", "the", "order", "#", "ext", "text",
    ]  # fmt: skip
    seps = [" ", "-", ".", "/", " (", ") ", ":", ",", "", "\n", "\u00a0", "+"]

    def token() -> str:
        roll = rng.random()
        if roll < 0.45:
            return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
        if roll < 0.75:
            return rng.choice(words)
        if roll < 0.85:
            return f"{rng.choice(words).lower()}.{rng.randint(1, 99)}@example.com"
        if roll < 0.9:
            return rng.choice(
                ("DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111", "+1 415 555 2671")
            )
        return "".join(rng.choice("ABCDEFGHJKXZ0123456789") for _ in range(rng.randint(4, 10)))

    return [
        "".join(token() + rng.choice(seps) for _ in range(rng.randint(3, 40))) for _ in range(count)
    ]


FUZZ = [(text, None) for text in _fuzz_texts(250, seed=5)]
TABLE = [(text, None) for text in table_texts()]


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(RECOGNIZERS, backend=request.param)


def reference(text: str, field: str | None) -> dict[str, list[Finding]]:
    return {r.name: list(scan_reference(r, text, field=field)) for r in RECOGNIZERS}


def grouped(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {r.name: [] for r in RECOGNIZERS}
    for f in findings:
        out[f.recognizer].append(f)
    return out


def test_backends_include_hyperscan_and_re2() -> None:
    assert BACKENDS == ["hyperscan", "re2", "re"]  # both are installed in this project


def test_corpus_is_not_trivial() -> None:
    found = sum(len(v) for text, field in TEXTS for v in reference(text, field).values())
    assert found > 200
    assert any(not any(reference(t, f).values()) for t, f in TEXTS)


def test_scan_text_all_equals_reference_per_recognizer(engine: Engine) -> None:
    for text, field in TEXTS + EXTRA:
        assert grouped(engine.scan_text_all(text, field=field)) == reference(text, field), text


@pytest.mark.parametrize("texts", [UNICODE, TABLE, FUZZ], ids=["unicode", "tables", "fuzz"])
def test_engine_equals_reference_on_hard_texts(
    engine: Engine, texts: list[tuple[str, None]]
) -> None:
    """Non-ASCII text (stand-ins, Unicode digits and spaces, odd case forms of context
    words), every recognizer table's texts, and random texts packed with digit groups."""
    for text, field in texts:
        assert grouped(engine.scan_text_all(text, field=field)) == reference(text, field), text
    batch = engine.scan_texts_all([t for t, _ in texts], [f for _, f in texts], min_score=0.5)
    for (text, field), found in zip(texts, batch, strict=True):
        expected = {
            r.name: list(scan_reference(r, text, field=field, min_score=0.5)) for r in RECOGNIZERS
        }
        assert grouped(found) == expected, text


def test_hard_texts_are_not_trivial() -> None:
    found = sum(len(v) for text, field in UNICODE + FUZZ for v in reference(text, field).values())
    assert found > 300


def test_min_score_applies_like_reference(engine: Engine) -> None:
    for text, field in TEXTS[:200]:
        expected = {
            r.name: list(scan_reference(r, text, field=field, min_score=0.5)) for r in RECOGNIZERS
        }
        assert grouped(engine.scan_text_all(text, field=field, min_score=0.5)) == expected


def test_batch_equals_one_by_one(engine: Engine) -> None:
    texts = [t for t, _ in TEXTS + EXTRA]
    fields = [f for _, f in TEXTS + EXTRA]
    batch = engine.scan_texts_all(texts, fields)
    assert batch == [engine.scan_text_all(t, field=f) for t, f in zip(texts, fields, strict=True)]
    assert engine.scan_texts(texts, fields) == [dedupe(b) for b in batch]
    assert sum(map(len, batch)) > 200


def test_hits_in_any_order_are_sorted_into_their_texts() -> None:
    """Hyperscan reports hits almost always in the order of their ends, and the matcher
    looks up a hit's text from the previous one's, then the next few; hits out of that
    order (shuffled, reversed) or far apart must land in the same texts, intervals and
    context occurrences as when each hit's text is bisected."""
    matcher = Engine(registry.load(), backend="hyperscan")._matcher
    assert isinstance(matcher, HyperscanMatcher)
    texts = [t for t, _ in TEXTS[:300]]
    data, starts, _ = _joined(texts)
    hits: list[tuple[int, int, int]] = []
    matcher.main.scan(data, match_event_handler=lambda i, a, b, _f, _c: hits.append((i, a, b)))

    Spans = list[tuple[int, int]]
    Sorted = tuple[list[dict[int, Spans]], list[dict[int, Spans]]]

    def sort_hits(
        order: list[tuple[int, int, int]],
        at: list[int],
        texts_of: list[int],
        intervals: list[dict[int, Spans]],
        contexts: list[dict[int, Spans]],
    ) -> None:
        """The hits through the matcher's match handler, in this order."""
        on_match = _Collector(matcher, at, texts_of, intervals, contexts).on_match
        for idx, start, end in order:
            on_match(idx, start, end, 0, None)

    def collect(order: list[tuple[int, int, int]]) -> Sorted:
        intervals: list[dict[int, Spans]] = [{} for _ in texts]
        contexts: list[dict[int, Spans]] = [{} for _ in texts]
        sort_hits(order, starts, list(range(len(texts))), intervals, contexts)
        return (
            [{idx: sorted(spans) for idx, spans in i.items()} for i in intervals],
            [{rid: sorted(found) for rid, found in c.items()} for c in contexts],
        )

    def one_by_one(order: list[tuple[int, int, int]]) -> Sorted:
        """Each hit sorted on its own, its text bisected."""
        intervals: list[dict[int, Spans]] = [{} for _ in texts]
        contexts: list[dict[int, Spans]] = [{} for _ in texts]
        for idx, at, to in order:
            k = bisect.bisect_right(starts, to - 1) - 1
            sort_hits([(idx, at, to)], starts[k : k + 1], [k], intervals, contexts)
        return (
            [{idx: sorted(spans) for idx, spans in i.items()} for i in intervals],
            [{rid: sorted(found) for rid, found in c.items()} for c in contexts],
        )

    expected = one_by_one(hits)
    assert sum(map(len, expected[0])) > 100
    assert sum(map(len, expected[1])) > 50  # context words too
    assert collect(hits) == expected
    shuffled = hits[:]
    random.Random(5).shuffle(shuffled)
    assert collect(shuffled) == expected
    assert collect(hits[::-1]) == expected
    for step in (7, 40):  # hits many texts apart
        assert collect(hits[::step]) == one_by_one(hits[::step])


def test_scan_records_equals_one_record_at_a_time(engine: Engine) -> None:
    records = [r.fields for r in CORPUS.records[:120]]
    declared = {"email": "EMAIL_ADDRESS"}
    batch = engine.scan_records(records, declared=declared, min_score=0.5)
    assert batch == [engine.scan_record(r, declared=declared, min_score=0.5) for r in records]
    assert sum(map(len, batch)) > 50


def test_batch_needs_matching_fields(engine: Engine) -> None:
    with pytest.raises(ValueError, match="differ"):
        engine.scan_texts_all(["a", "b"], [None])


def test_offsets_are_characters_in_non_ascii_text(engine: Engine) -> None:
    text = "Müller ☎ +49 30 1234567 — Jürgen.Weiß schreibt an anna.kim@globex.io"
    found = {f.entity: text[f.start : f.end] for f in engine.scan_text(text)}
    assert found["PHONE_NUMBER"] == "+49 30 1234567"
    assert found["EMAIL_ADDRESS"] == "anna.kim@globex.io"


def test_batch_offsets_are_local_to_each_text(engine: Engine) -> None:
    texts = ["é" * 7 + " 536-22-1234", "SSN 536-22-1234", "ünïcödé ssn 536 22 1234"]
    found = engine.scan_texts(texts, ["ssn", None, None])
    assert [[t[f.start : f.end] for f in fs] for t, fs in zip(texts, found, strict=True)] == [
        ["536-22-1234"],
        ["536-22-1234"],
        ["536 22 1234"],
    ]


def test_dedupe_keeps_the_strongest_overlapping_finding() -> None:
    weak = Finding("US_BANK_NUMBER", 0, 16, 0.65, "us_bank_account", "digits")
    strong = Finding("CREDIT_CARD", 0, 16, 1.0, "credit_card", "card", validated=True)
    inner = Finding("PHONE_NUMBER", 4, 14, 0.7, "phone", "phone")
    apart = Finding("EMAIL_ADDRESS", 20, 30, 0.5, "email", "email")
    assert dedupe([weak, inner, apart, strong]) == [strong, apart]
    tie_short = Finding("A", 0, 5, 0.5, "a", "p", validated=True)
    tie_long = Finding("B", 0, 9, 0.5, "b", "p", validated=True)
    assert dedupe([tie_short, tie_long]) == [tie_long]


def test_engine_scan_text_resolves_overlaps(engine: Engine) -> None:
    text = "ssn 021000021 routing"
    every = engine.scan_text_all(text)
    kept = engine.scan_text(text)
    assert len(every) > len(kept) == 1
    assert kept[0].entity == "ABA_ROUTING_NUMBER"
    assert kept[0].score == max(f.score for f in every)


def test_scan_record_reports_declared_fields_whole(engine: Engine) -> None:
    record = {
        "email": "anna.kim@globex.io",
        "ssn": "536-22-1234",
        "notes": "call +44 20 7946 0958",
        "nested": {"tags": ["ok", "mail me at liam.kim@hooli.nl"]},
        "count": 3,
    }
    found = engine.scan_record(record, declared={"ssn": "US_SSN"}, min_score=0.5)
    by_field = defaultdict(list)
    for ff in found:
        by_field[ff.field].append(ff.finding)
    (ssn,) = by_field["ssn"]
    assert (ssn.entity, ssn.start, ssn.end, ssn.score, ssn.recognizer) == (
        "US_SSN",
        0,
        11,
        1.0,
        "schema",
    )
    assert [f.entity for f in by_field["email"]] == ["EMAIL_ADDRESS"]
    assert [f.entity for f in by_field["notes"]] == ["PHONE_NUMBER"]
    assert [f.entity for f in by_field["nested.tags.1"]] == ["EMAIL_ADDRESS"]
    assert set(by_field) == {"ssn", "email", "notes", "nested.tags.1"}
    only = engine.scan_record(record, fields=["notes"])
    assert {ff.field for ff in only} == {"notes"}


def test_scan_record_does_not_detect_in_declared_fields(engine: Engine) -> None:
    record = {"comment": "ssn 536-22-1234"}
    found = engine.scan_record(record, declared={"comment": "FREE_TEXT"})
    assert [(ff.field, ff.finding.entity, ff.finding.recognizer) for ff in found] == [
        ("comment", "FREE_TEXT", "schema")
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_without_recognizers_finds_nothing(backend: str) -> None:
    engine = Engine([], backend=backend)  # type: ignore[arg-type]
    assert engine.scan_text("ssn 536-22-1234 card 4111 1111 1111 1111") == []
    assert engine.scan_texts(["a", "", "b"]) == [[], [], []]
    assert engine.scan_record({"a": "536-22-1234"}) == []


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        Engine(RECOGNIZERS, backend="pcre")  # type: ignore[arg-type]


class _Wide(Recognizer):
    """A pattern whose last real match lies beyond other patterns' hits, with a lookahead
    and a long bounded repeat: checks the windows the engine derives."""

    entity = "TEST"
    name = "wide"
    patterns: ClassVar[tuple[Pattern, ...]] = (
        Pattern("x", r"(?<![a-z])x[a-z0-9]{2,40}(?![a-z]|[.][0-9])", 0.5),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_windows_match_finditer_on_crafted_text(backend: str) -> None:
    engine = Engine([_Wide()], backend=backend)  # type: ignore[arg-type]
    texts = [
        "xab xa.1 yxab x" + "a" * 45 + " xyz9.5 xq",
        "xx" * 30,
        "x12 " * 50,
        "xa1" + " " * 200 + "xb2" + "." * 39 + "xc3" + " " * 41 + "xd4",  # far apart and near
    ]
    for text in texts:
        assert engine.scan_text_all(text) == list(scan_reference(_Wide(), text))


class _Overlapping(Recognizer):
    """Matches that overlap one another: finditer reports only the first of each chain,
    so windows must not start a fresh search inside an earlier window's match."""

    entity = "TEST"
    name = "overlapping"
    patterns: ClassVar[tuple[Pattern, ...]] = (Pattern("ab", r"a[ab]{3,30}b", 0.5),)


@pytest.mark.parametrize("backend", BACKENDS)
def test_windows_keep_finditer_order_when_matches_overlap(backend: str) -> None:
    engine = Engine([_Overlapping()], backend=backend)  # type: ignore[arg-type]
    rng = random.Random(3)
    texts = ["".join(rng.choice("ab ") for _ in range(rng.randint(5, 300))) for _ in range(300)]
    for text in texts:
        assert engine.scan_text_all(text) == list(scan_reference(_Overlapping(), text)), text


def test_prefilter_widens_and_strips() -> None:
    regex = r"(?<![\w-])a{2,40}(?=b)c{1,3}(?!d)"
    assert strip_lookarounds(regex) == "a{2,40}c{1,3}"
    assert prefilter(regex) == "a{2,}c{1,3}"
    assert strip_lookarounds("(?=ab)c", keep_lookahead=True) == "(?:ab)c"


class _Context(Recognizer):
    entity = "TEST"
    name = "context"
    patterns: ClassVar[tuple[Pattern, ...]] = (Pattern("digits", r"(?<!\d)\d{6}(?!\d)", 0.3),)
    context: ClassVar[tuple[str, ...]] = ("tin", "ssn", "tax id")
    context_required: ClassVar[bool] = True


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("tin 123456", "tin"),
        ("Tax ID: 123456", "tax id"),
        ("SSN\u00a0123456", "ssn"),
        ("123456 ssn", "ssn"),
        ("sa" + "tin" + " " * 45 + "123456", None),  # the window starts inside "satin"
        ("x" * 3 + "tin" + " " * 45 + "123456", None),  # ... inside "xxxtin"
        (" tin" + " " * 45 + "123456", "tin"),  # the word itself starts the window
        ("123456ssn", None),  # glued to the value: another word
        ("123456 satin", None),
    ],
)
def test_context_words_are_whole_words(text: str, word: str | None) -> None:
    start = text.index("123456")
    assert _Context.context_in(text, start, start + 6) == word
    for backend in BACKENDS:
        engine = Engine([_Context()], backend=backend)  # type: ignore[arg-type]
        assert engine.scan_text_all(text) == list(scan_reference(_Context(), text))


def _context_by_the_rule(context: tuple[str, ...], text: str, start: int, end: int) -> str | None:
    """`Recognizer.context_in` as its docstring states it, spelt out with a regex over the
    lower-cased window (the implementation takes a faster road for ASCII text)."""
    lo, hi = max(0, start - 48), end + 24
    found: list[str] = []
    for at, stop in ((lo, start), (end, hi)):
        piece = text[at:stop].lower()
        for m in re.finditer(r"[a-z0-9]+", piece):
            glued = (
                m.start() == 0 and at > 0 and re.fullmatch(r"[a-z0-9]", text[at - 1].lower()[-1:])
            )
            if not glued and m.group() in context:
                found.append(m.group())
    window = text[lo:start].lower() + " " + text[end:hi].lower()
    found += [w for w in context if " " in w and w in window]
    return min(found, key=context.index) if found else None


class _Words(Recognizer):
    entity = "TEST"
    name = "words"
    patterns: ClassVar[tuple[Pattern, ...]] = (Pattern("digits", r"\d{6}", 0.3),)
    context: ClassVar[tuple[str, ...]] = ("tel", "telephone", "ab", "x1", "call me", "k\u00e9y")


def test_context_lookup_follows_its_rule_on_random_texts() -> None:
    rng = random.Random(11)
    alphabet = [
        "tel",
        "Tel",
        "TELEPHONE",
        "ab",
        "AB",
        "x1",
        "call",
        "me",
        "k\u00e9y",
        "K\u00c9Y",
        " ",
        " ",
        "-",
        ".",
        "a",
        "1",
        "\u00e9",
        "\u0130",
        "\u212a",
    ]
    latin1 = [p for p in alphabet if max(p) < "\u0100"]
    checked = ascii_checked = latin1_checked = 0
    for i in range(6000):
        pieces = (alphabet, [p for p in alphabet if p.isascii()], latin1)[i % 3]
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        start = rng.randint(0, len(text))
        text = text[:start] + "123456" + text[start:]
        want = _context_by_the_rule(_Words.context, text, start, start + 6)
        assert _Words.context_in(text, start, start + 6) == want, (text, start)
        checked += want is not None
        ascii_checked += want is not None and text.isascii()
        latin1_checked += want is not None and not text.isascii() and max(text) < "\u0100"
    assert ascii_checked > 300  # every road was taken, often: ASCII, Latin-1, wider
    assert latin1_checked > 300
    assert checked - ascii_checked - latin1_checked > 100


class _SingleWords(Recognizer):
    """Context of single words only: the engine reads them off the matcher's occurrences
    (`hub.dlp.engine._context_at`) instead of calling context_in, in Latin-1 text."""

    entity = "TEST"
    name = "single_words"
    patterns: ClassVar[tuple[Pattern, ...]] = (Pattern("digits", r"\d{6}", 0.3),)
    context: ClassVar[tuple[str, ...]] = ("tel", "telephone", "ab", "x1", "e-mail", "k\u00e9y")


class _GatedSingleWords(_SingleWords):
    name = "gated_single_words"
    context_required: ClassVar[bool] = True


class _Phrases(_SingleWords):
    name = "phrases"
    context: ClassVar[tuple[str, ...]] = ("tel", "call me", "ab", "me tel", "x1 ab", "e-mail")
    context_required: ClassVar[bool] = True


def test_context_from_the_matchers_occurrences_is_context_in() -> None:
    """Random texts of context words and phrases cut, glued and spread around the values,
    with characters that lower-case into ASCII letters (\u212a, \u0130) or are
    stand-ins for them: the engine reports the context word `scan_reference` does, whether
    it looks the word up before validating (gated; a score under the threshold) or after."""
    assert _context_words(_SingleWords) == ({"tel": 0, "telephone": 1, "ab": 2, "x1": 3}, ())
    assert _context_words(_Words)[1] == (("call me", 4),)
    rng = random.Random(17)
    alphabet = [
        "tel", "Tel", "TELEPHONE", "telephon", "ab", "AB", "x1", "e-mail", "k\u00e9y", " ",
        "call", "Me", "call me", "me tel",
        " ", "  ", "-", ".", "a", "1", "\u00e9", "\u0130", "\u212a", "123456", "\n",
    ]  # fmt: skip
    latin1 = [p for p in alphabet if max(p) < "\u0100"]
    recognizers = [_SingleWords(), _GatedSingleWords(), _Phrases()]
    engine = Engine(recognizers, backend="hyperscan")
    with_word = with_phrase = 0
    for i in range(3000):
        pieces = latin1 if i % 4 else alphabet
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
        for min_score in (0.0, 0.5):
            want = [f for r in recognizers for f in scan_reference(r, text, min_score=min_score)]
            assert engine.scan_text_all(text, min_score=min_score) == want, (text, min_score)
            with_word += sum(f.context_word is not None for f in want)
            with_phrase += sum(f.context_word in ("call me", "me tel", "x1 ab") for f in want)
    assert with_word > 1000
    assert with_phrase > 300


class _Untranslatable(Recognizer):
    """Patterns the hyperscan translation does not take (a negated class, a Unicode word
    class inside the match): the engine still finds what the reference finds."""

    entity = "TEST"
    name = "untranslatable"
    patterns: ClassVar[tuple[Pattern, ...]] = (
        Pattern("negated", r"#[^\s#]{3,8}#", 0.5),
        Pattern("word", r"(?<!\w)\w{2}\d{3}(?!\w)", 0.5),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_patterns_the_matcher_cannot_run_are_searched_everywhere(backend: str) -> None:
    engine = Engine([_Untranslatable()], backend=backend)  # type: ignore[arg-type]
    texts = ["a #tag# b #çé√# c", "ab123 éz456 x", "", "nothing", "#a# ##", "Ωλ789 done"]
    found = engine.scan_texts_all(texts)
    assert found == [list(scan_reference(_Untranslatable(), t)) for t in texts]
    assert sum(map(len, found)) >= 4


def test_a_nan_min_score_is_refused(engine: Engine) -> None:
    """Against NaN every "score below the threshold" check is False, so the engine would
    report everything where the reference (``score >= min_score``) reports nothing."""
    with pytest.raises(ValueError, match="NaN"):
        engine.scan_text_all("ssn 536-22-1234", min_score=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        engine.scan_records([{"ssn": "536-22-1234"}], min_score=float("nan"))
