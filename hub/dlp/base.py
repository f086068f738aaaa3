"""The recognizer interface. One recognizer per entity per file under
``hub/dlp/recognizers/``, each with its patterns, context words and, where the identifier
has one, a checksum or structure validator that runs only on candidates.

Scoring: a candidate starts at its pattern's score; ``validate`` may raise it (checksum
passed), lower it, or reject the candidate (``None``); context words near the match (or a
structured field whose name is context) add ``CONTEXT_BOOST``. A context-gated recognizer
(`context_required`) reports nothing without context.
"""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

CONTEXT_BOOST = 0.35
CONTEXT_WINDOW = 48  # characters before (and after) a match searched for context words
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A candidate pattern in Python ``re`` syntax: no inline flags, no named groups, and
    only non-capturing groups ``(?:…)`` so patterns can be combined into one pass.
    Patterns carry their own boundaries (e.g. ``(?<![\\w-])…(?![\\w-])``)."""

    name: str
    regex: str
    score: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value found: where, what, how sure, which recognizer. The value itself
    is never stored here; callers slice the text they scanned."""

    entity: str
    start: int
    end: int
    score: float
    recognizer: str
    pattern: str
    context_word: str | None = None
    validated: bool = False


class Recognizer(ABC):
    entity: ClassVar[str]
    name: ClassVar[str]
    patterns: ClassVar[tuple[Pattern, ...]]
    context: ClassVar[tuple[str, ...]] = ()  # lower-case words; matched as whole tokens
    context_required: ClassVar[bool] = False
    # Structured field names that are context for this entity (normalised: lower-case,
    # non-alphanumerics removed), e.g. ("ssn", "socialsecuritynumber").
    field_names: ClassVar[tuple[str, ...]] = ()
    validated_score: ClassVar[float] = 1.0  # score when validate() confirms a checksum

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        """Called once per candidate (the matched text). Return its score — the pattern's
        score, or `validated_score` when a checksum confirms it, or anything between — or
        None to reject it. Default: the pattern's score."""
        return pattern.score

    # -- shared helpers ------------------------------------------------------------------
    @classmethod
    def context_in(cls, text: str, start: int, end: int) -> str | None:
        """The first context word within CONTEXT_WINDOW characters around [start, end)."""
        if not cls.context:
            return None
        window = text[max(0, start - CONTEXT_WINDOW) : start].lower()
        window += " " + text[end : end + CONTEXT_WINDOW // 2].lower()
        words = set(_WORD.findall(window))
        for word in cls.context:
            if " " in word:
                if word in window:
                    return word
            elif word in words:
                return word
        return None

    @classmethod
    def field_is_context(cls, field: str | None) -> bool:
        if not field:
            return False
        norm = normalise_field(field)
        return any(norm == f or norm.endswith(f) for f in cls.field_names)


def normalise_field(field: str) -> str:
    return "".join(ch for ch in field.lower() if ch.isalnum())


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def scan_reference(
    recognizer: Recognizer, text: str, *, field: str | None = None, min_score: float = 0.0
) -> Iterator[Finding]:
    """The simple, obviously-correct scan of one recognizer: every pattern on its own with
    ``re.finditer``. The engine's single-pass scan must agree with it; recognizer tests
    use it."""
    field_ctx = recognizer.field_is_context(field)
    seen: set[tuple[int, int]] = set()
    for pattern in recognizer.patterns:
        for m in re.finditer(pattern.regex, text):
            span = (m.start(), m.end())
            if span in seen or m.start() == m.end():
                continue
            finding = evaluate(recognizer, pattern, text, m.start(), m.end(), field_ctx=field_ctx)
            if finding is not None and finding.score >= min_score:
                seen.add(span)
                yield finding


def evaluate(
    recognizer: Recognizer,
    pattern: Pattern,
    text: str,
    start: int,
    end: int,
    *,
    field_ctx: bool,
) -> Finding | None:
    """Validate one candidate and apply context; shared by the reference scan and the
    engine so both score identically."""
    # Context first: it is cheap, and a context-gated recognizer needs no validation
    # without it (same result either way).
    word = "field name" if field_ctx else recognizer.context_in(text, start, end)
    if recognizer.context_required and word is None:
        return None
    score = recognizer.validate(text[start:end], pattern)
    if score is None:
        return None
    validated = score >= recognizer.validated_score
    if word is not None:
        score = min(1.0, score + CONTEXT_BOOST)
    return Finding(
        entity=recognizer.entity,
        start=start,
        end=end,
        score=round(score, 4),
        recognizer=recognizer.name,
        pattern=pattern.name,
        context_word=word,
        validated=validated,
    )
