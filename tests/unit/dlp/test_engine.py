"""The engine finds, per recognizer, exactly what `scan_reference` finds — on every backend,
one text at a time or in batches — with character offsets, overlaps resolved to the
strongest finding, and declared fields reported whole."""

from __future__ import annotations

import importlib
from collections import defaultdict
from typing import ClassVar

import pytest

from bench.dlp_corpus import generate
from hub.dlp import registry
from hub.dlp.base import Finding, Pattern, Recognizer, scan_reference
from hub.dlp.engine import Engine, dedupe, prefilter, strip_lookarounds

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
    ]
    for text in texts:
        assert engine.scan_text_all(text) == list(scan_reference(_Wide(), text))


def test_prefilter_widens_and_strips() -> None:
    regex = r"(?<![\w-])a{2,40}(?=b)c{1,3}(?!d)"
    assert strip_lookarounds(regex) == "a{2,40}c{1,3}"
    assert prefilter(regex) == "a{2,}c{1,3}"
    assert strip_lookarounds("(?=ab)c", keep_lookahead=True) == "(?:ab)c"
