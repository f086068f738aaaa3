"""Every pattern of these recognizers must be combinable into one alternation: it compiles
alone and inside ``(?:p1)|(?:p2)|…``, has no capturing or named groups, no inline flags
and no back-references, and each module holds exactly one recognizer."""

from __future__ import annotations

import importlib
import inspect
import re
from types import ModuleType

import pytest

from hub.dlp.base import Pattern, Recognizer

MODULES = [
    "hub.dlp.recognizers.credit_card",
    "hub.dlp.recognizers.us_ssn",
    "hub.dlp.recognizers.iban",
    "hub.dlp.recognizers.email",
    "hub.dlp.recognizers.phone",
    "hub.dlp.recognizers.ip_address",
    "hub.dlp.recognizers.us_passport",
    "hub.dlp.recognizers.us_bank_account",
    "hub.dlp.recognizers.aba_routing",
]


def recognizers_in(module: ModuleType) -> list[type[Recognizer]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Recognizer)
        and obj is not Recognizer
        and obj.__module__ == module.__name__
    ]


RECOGNIZERS = [cls for name in MODULES for cls in recognizers_in(importlib.import_module(name))]
PATTERNS = [(cls.__name__, p) for cls in RECOGNIZERS for p in cls.patterns]
# An inline flag group "(?aiLmsux-imsx:" or "(?i)", a named group, or a back-reference.
FORBIDDEN = re.compile(r"\(\?[aiLmsux-]+[:)]|\(\?P|\\[1-9]|\\g<")


@pytest.mark.parametrize("module_name", MODULES)
def test_one_recognizer_per_module(module_name: str) -> None:
    found = recognizers_in(importlib.import_module(module_name))
    assert len(found) == 1
    cls = found[0]
    assert cls.__name__.endswith("Recognizer")
    assert cls.entity.isupper()
    assert cls.name == module_name.rsplit(".", 1)[1]
    assert cls.patterns
    assert all(word == word.lower() for word in cls.context)
    assert all(f == re.sub(r"[^a-z0-9]", "", f) for f in cls.field_names)
    assert cls.field_names


def test_patterns_collected() -> None:
    assert len(RECOGNIZERS) == len(MODULES)
    assert len(PATTERNS) >= len(MODULES)


@pytest.mark.parametrize(("owner", "pattern"), PATTERNS, ids=lambda v: getattr(v, "name", v))
def test_pattern_compiles_without_groups_or_flags(owner: str, pattern: Pattern) -> None:
    compiled = re.compile(pattern.regex)
    assert compiled.groups == 0, owner
    assert compiled.groupindex == {}
    assert FORBIDDEN.search(pattern.regex) is None, owner
    assert 0.0 < pattern.score <= 1.0
    assert ".*" not in pattern.regex
    assert ".+" not in pattern.regex
    assert compiled.search("") is None  # never matches the empty string


def test_all_patterns_compile_in_one_alternation() -> None:
    combined = re.compile("|".join(f"(?:{p.regex})" for _, p in PATTERNS))
    assert combined.groups == 0
    sample = "card 4111 1111 1111 1111, mail john.doe@example.com, host 192.168.1.10"
    spans = {m.group() for m in combined.finditer(sample)}
    assert {"4111 1111 1111 1111", "john.doe@example.com", "192.168.1.10"} <= spans


def test_forbidden_constructs_are_detected() -> None:
    # The guard itself must be able to fail.
    for bad in (r"(?i)abc", r"(?P<x>a)", r"(a)\1", r"(?i:abc)"):
        assert FORBIDDEN.search(bad) is not None
    assert re.compile(r"(a)").groups == 1
