"""Every pattern of the national-id, health and secret recognizers obeys the rules that let
the engine combine all patterns into one pass: it compiles alone and inside one big
alternation, has no capturing or named groups and no inline flags, and stays linear on
adversarial input."""

from __future__ import annotations

import importlib
import inspect
import re
import time

import pytest

from hub.dlp.base import Pattern, Recognizer, normalise_field

MODULES = (
    "us_driver_license",
    "uk_nhs",
    "nl_bsn",
    "es_nif",
    "it_fiscal_code",
    "fr_nir",
    "de_tax_id",
    "date_of_birth",
    "medical_record_number",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "private_key",
    "jwt",
)
INLINE_FLAGS = re.compile(r"(?<!\\)\(\?[-aiLmsux]")


def _recognizers_in(module_name: str) -> list[type[Recognizer]]:
    module = importlib.import_module(f"hub.dlp.recognizers.{module_name}")
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Recognizer) and cls.__module__ == module.__name__
    ]


CLASSES = [cls for name in MODULES for cls in _recognizers_in(name)]
PATTERNS = [(cls.__name__, p) for cls in CLASSES for p in cls.patterns]


@pytest.mark.parametrize("module_name", MODULES)
def test_one_recognizer_per_file(module_name: str) -> None:
    (cls,) = _recognizers_in(module_name)
    assert cls.__name__.endswith("Recognizer")
    assert cls.name == module_name
    assert cls.entity == cls.entity.upper()
    assert cls.patterns


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_context_words_and_field_names_are_normalised(cls: type[Recognizer]) -> None:
    assert all(word == word.lower() for word in cls.context)
    assert all(normalise_field(f) == f and f for f in cls.field_names)
    assert len({p.name for p in cls.patterns}) == len(cls.patterns)


@pytest.mark.parametrize(("owner", "pattern"), PATTERNS, ids=lambda v: getattr(v, "name", v))
def test_pattern_compiles_alone_without_groups_or_flags(owner: str, pattern: Pattern) -> None:
    compiled = re.compile(pattern.regex)
    assert compiled.groups == 0, owner
    assert "(?P" not in pattern.regex
    assert not INLINE_FLAGS.search(pattern.regex)
    assert 0.0 < pattern.score <= 1.0


def test_all_patterns_combine_into_one_alternation() -> None:
    combined = re.compile("|".join(f"(?:{p.regex})" for _, p in PATTERNS))
    assert combined.groups == 0
    # ... and the engine may tag each alternative with a named group of its own
    tagged = re.compile("|".join(f"(?P<p{i}>{p.regex})" for i, (_, p) in enumerate(PATTERNS)))
    assert tagged.groups == len(PATTERNS)
    text = "DOB: 1984-03-05, NIE X-5253868-R"
    hits = {m.lastgroup for m in tagged.finditer(text)}
    assert len(hits) >= 2


ADVERSARIAL = (
    "1" * 20_000,
    "A1" * 10_000,
    "a-" * 10_000,
    "1 " * 10_000,
    "1." * 10_000,
    "eyJ" + "a" * 20_000,
    "eyJaaaaaaaaaa.eyJ" + "b" * 20_000,
    "-----BEGIN RSA PRIVATE KEY-----" + "A" * 20_000,
    ("-----BEGIN PRIVATE KEY-----" + "A" * 100) * 200,
    "xoxb-1-" + "a" * 20_000,
    "March 5, " * 3_000,
    "WDL*" * 5_000,
)


@pytest.mark.parametrize(("owner", "pattern"), PATTERNS, ids=lambda v: getattr(v, "name", v))
def test_pattern_is_linear_on_adversarial_input(owner: str, pattern: Pattern) -> None:
    compiled = re.compile(pattern.regex)
    started = time.perf_counter()
    for text in ADVERSARIAL:
        for _ in compiled.finditer(text):
            pass
    # ~260 kB in all; a linear pattern takes milliseconds, a backtracking one minutes.
    assert time.perf_counter() - started < 2.0, owner
