"""`crmhub dlp explain`'s near misses (`hub.dlp.cli.near_misses`): every span a pattern
matches is either a finding of the engine (for that recognizer) or a near miss with the
reason the recognizer dropped it, never both and never neither."""

from __future__ import annotations

import re

import pytest

from bench.dlp_corpus import generate
from hub.dlp import registry
from hub.dlp.cli import NO_CONTEXT, REJECTED, NearMiss, near_misses
from hub.dlp.engine import Engine
from tests.unit.dlp.scan_helpers import table_texts

ENGINE = Engine(registry.load())


def _misses(text: str, field: str | None = None) -> list[NearMiss]:
    return near_misses(ENGINE, text, field, ENGINE.scan_text_all(text, field=field))


def _by_recognizer(misses: list[NearMiss]) -> dict[str, NearMiss]:
    return {m.recognizer.name: m for m in misses}


def test_a_published_sample_ssn_is_a_near_miss_of_the_validator() -> None:
    text = "ssn 123-45-6789"
    assert not [f for f in ENGINE.scan_text_all(text) if f.entity == "US_SSN"]
    ssn = _by_recognizer(_misses(text))["us_ssn"]
    assert (ssn.start, ssn.end, ssn.pattern.name) == (4, 15, "ssn_dashed")
    assert ssn.reason == REJECTED
    assert ssn.context_word == "ssn"


def test_a_context_gated_shape_without_context_needs_a_context_word() -> None:
    licence = _by_recognizer(_misses("ref 12345678 attached"))["us_driver_license"]
    assert licence.reason == NO_CONTEXT
    assert licence.context_word is None
    # With its context word the same digits are a finding, not a near miss.
    text = "driver license 12345678"
    assert any(f.recognizer == "us_driver_license" for f in ENGINE.scan_text_all(text))
    assert "us_driver_license" not in _by_recognizer(_misses(text))


def test_the_field_name_is_context_for_near_misses_too() -> None:
    misses = _by_recognizer(_misses("123-45-6789", field="ssn"))
    assert misses["us_ssn"].context_word == "field name"
    assert misses["us_ssn"].reason == REJECTED


@pytest.mark.parametrize("field", [None, "notes", "ssn", "phone"])
def test_every_pattern_match_is_a_finding_or_a_near_miss(field: str | None) -> None:
    texts = [t for t, _, _ in generate(120, seed=5).texts()] + table_texts()
    misses_seen = 0
    for text in texts:
        findings = ENGINE.scan_text_all(text, field=field)
        found = {(f.recognizer, f.start, f.end) for f in findings}
        missed = [
            (m.recognizer.name, m.start, m.end) for m in near_misses(ENGINE, text, field, findings)
        ]
        assert len(missed) == len(set(missed)), text
        assert found.isdisjoint(missed), text
        matches = {
            (r.name, *m.span())
            for r in ENGINE.recognizers
            for p in r.patterns
            for m in re.finditer(p.regex, text)
            if m.start() != m.end()
        }
        assert found | set(missed) == matches, text
        misses_seen += len(missed)
    assert misses_seen > 100  # the corpus's hard negatives give the reasons work to do
