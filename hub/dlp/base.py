"""The recognizer interface. One recognizer per entity per file under
``hub/dlp/recognizers/``, each with its patterns, context words and, where the identifier
has one, a checksum or structure validator that runs only on candidates.

Scoring: a candidate starts at its pattern's score; ``validate`` may raise it (checksum
passed), lower it, or reject the candidate (``None``); context words near the match (or a
structured field whose name is context) add ``CONTEXT_BOOST``. A context-gated recognizer
(`context_required`) reports nothing without context.

Ceilings: a pattern's ``ceiling`` (and, finer, `Recognizer.ceiling` for one candidate) is
the highest score ``validate`` can give before context. The engine uses it to skip work
that cannot reach the caller's threshold: a candidate whose ceiling is under the threshold
is only worth validating where a context word can lift it. A ceiling that is too low would
lose findings; the recognizer tests check every recognizer's ceilings against
``validate``.
"""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from typing import ClassVar, NamedTuple

from mypy_extensions import mypyc_attr

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
    ceiling: float = 1.0  # the highest score validate() gives its candidates (no context)
    # A simpler expression that matches wherever `regex` does (same end), for the
    # multi-pattern matchers when `regex` is too costly for them; None: `regex` itself.
    prefilter: str | None = None


class Finding(NamedTuple):
    """One sensitive value found: where, what, how sure, which recognizer. The value itself
    is never stored here; callers slice the text they scanned. (A named tuple: the engine
    makes one per finding, and a tuple is built three times faster than a frozen
    dataclass.)"""

    entity: str
    start: int
    end: int
    score: float
    recognizer: str
    pattern: str
    context_word: str | None = None
    validated: bool = False


# Compiled with mypyc (hub.dlp.native); a recognizer of another package, or of a test, is
# a plain Python subclass.
@mypyc_attr(allow_interpreted_subclasses=True)
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
    # Entities `rescore` defers to: it runs only beside their recognizers (see `rescore`)
    rescore_needs: ClassVar[frozenset[str]] = frozenset()

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        """Called once per candidate (the matched text). Return its score — the pattern's
        score, or `validated_score` when a checksum confirms it, or anything between — or
        None to reject it. Default: the pattern's score."""
        return pattern.score

    def ceiling(self, candidate: str, pattern: Pattern) -> float:
        """An upper bound of `validate`'s score for this candidate, from its shape alone
        (cheap: no checksum, no library call). Default: the pattern's ``ceiling``."""
        return pattern.ceiling

    # -- shared helpers ------------------------------------------------------------------
    @classmethod
    def context_in(cls, text: str, start: int, end: int) -> str | None:
        """The first context word (in `context` order) within CONTEXT_WINDOW characters
        before [start, end) or half of it after. A word counts as a ``[a-z0-9]+`` token of
        the lower-cased text that starts in the window (one that starts before the window,
        or runs into it from the value itself, is a different word: "satin" does not hold
        "tin"); a phrase (words with spaces) anywhere in the window."""
        if not cls.context:
            return None
        first = max(0, start - CONTEXT_WINDOW)
        stop = end + CONTEXT_WINDOW // 2
        words, phrases, order, ascii_words = _context_index(cls.context)
        codec = "ascii" if text.isascii() else _latin1_codec(text, first, stop)
        if codec:
            # The same tokens, from bytes: lower-casing and splitting at every character
            # that is not [a-z0-9] is one table lookup per byte (a tenth of the regex's time).
            found_ascii = _ascii_words(text, first, start, ascii_words, codec)
            found_ascii += _ascii_words(text, end, stop, ascii_words, codec)
            found = [w.decode() for w in found_ascii]
        else:
            found = [*words.intersection(_tokens(text, first, text[first:start].lower()))]
            found += words.intersection(_tokens(text, end, text[end:stop].lower()))
        if phrases:
            window = text[first:start].lower() + " " + text[end:stop].lower()
            found += [phrase for phrase in phrases if phrase in window]
        return min(found, key=order.__getitem__) if found else None

    def rescore(
        self, text: str, start: int, end: int, score: float, word: str | None, field: str | None
    ) -> float:
        """A last look at a validated candidate in its text (of structured field `field`),
        after context (`word`: the context word, ``"field name"``, or None): its score,
        lowered where the text or field says it is more likely something else. Never raised
        (the ceilings bound the score). Default: the score as it is. Only recognizers that
        override it pay a call. A lowering that leaves the value to another entity's
        recognizer names that entity in `rescore_needs`, and runs only where that
        recognizer scans too (an engine without it keeps the score: nothing else would
        take the value)."""
        return score

    @classmethod
    def field_is_context(cls, field: str | None) -> bool:
        if not field:
            return False
        norm = normalise_field(field)
        return any(norm == f or norm.endswith(f) for f in cls.field_names)


def context_nearness(
    context: tuple[str, ...], text: str, start: int, end: int
) -> tuple[int, int] | None:
    """Where the nearest word or phrase of `context` lies in the context window of [start,
    end), as `Recognizer.context_in` takes them: ``(0, characters between)`` before the
    value, ``(1, characters between)`` after it, None when there is none. Smaller is
    nearer, and any word before the value is nearer than every word after it: in "label:
    value" text the label before is the value's, the one after the next value's. (Counted
    in the lower-cased text: off by a few where lower-casing changes a character's length.)"""
    if not context:
        return None
    words, phrases, _, _ = _context_index(context)
    first = max(0, start - CONTEXT_WINDOW)
    before = text[first:start].lower()
    after = text[end : end + CONTEXT_WINDOW // 2].lower()
    gaps_before = [
        len(before) - m.end()
        for m in _WORD.finditer(before)
        # a token running into the window from before it is another word (`_tokens`)
        if m.group() in words and not (m.start() == 0 and _joins(text, first))
    ]
    gaps_before += [len(before) - at - len(p) for p in phrases if (at := before.rfind(p)) >= 0]
    if gaps_before:
        return (0, min(gaps_before))
    gaps_after = [
        m.start()
        for m in _WORD.finditer(after)
        if m.group() in words and not (m.start() == 0 and _joins(text, end))
    ]
    gaps_after += [at for p in phrases if (at := after.find(p)) >= 0]
    return (1, min(gaps_after)) if gaps_after else None


def _joins(text: str, at: int) -> bool:
    """Whether a token starting at `at` continues a word of `text` before it."""
    if not 0 < at < len(text):
        return False
    return _WORD.match(text[at].lower()) is not None and (
        _WORD.fullmatch(text[at - 1].lower()[-1:]) is not None
    )


def _tokens(text: str, at: int, lowered: str) -> list[str]:
    """The words of `lowered` (``text`` lower-cased from `at` on) that start in it: the
    first one is left out when it continues a word of ``text`` before `at`."""
    tokens = _WORD.findall(lowered)
    if tokens and at and _WORD.match(lowered) and _WORD.fullmatch(text[at - 1].lower()[-1:]):
        del tokens[0]
    return tokens


# ASCII byte -> itself lower-cased if it is [A-Za-z0-9], else a space: `bytes.split` then
# gives the [a-z0-9]+ tokens of the lower-cased text.
_TOKEN_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)
_ASCII_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _latin1_codec(text: str, first: int, stop: int) -> str:
    """``"latin-1"`` when the context window ``text[first:stop]`` and the character before
    it are Latin-1, else "". Latin-1 lower-cases character for character, and only A-Z to
    [a-z0-9], so `_ascii_words` finds the same tokens there from the Latin-1 bytes (their
    upper half splits words, as any non-[a-z0-9] character does): 2,900 instructions a
    lookup instead of `_tokens`' 7,400 (callgrind; the bench corpus's non-ASCII text is
    accented Latin-1)."""
    window = text[first - 1 if first else 0 : stop]
    return "latin-1" if len(window.encode("latin-1", "ignore")) == len(window) else ""


def _ascii_words(
    text: str, at: int, stop: int, words: frozenset[bytes], codec: str = "ascii"
) -> list[bytes]:
    """`_tokens` of ``text[at:stop]`` that are in `words`, for a piece (and a character
    before it) that `codec` ("ascii" or "latin-1") encodes one byte per character."""
    piece = text[at:stop].encode(codec)
    tokens = piece.translate(_TOKEN_BYTES).split()
    if tokens and at and piece[0] in _ASCII_ALNUM and ord(text[at - 1]) in _ASCII_ALNUM:
        del tokens[0]
    return [t for t in tokens if t in words]


@cache
def _context_index(
    context: tuple[str, ...],
) -> tuple[frozenset[str], tuple[str, ...], dict[str, int], frozenset[bytes]]:
    """(single words, phrases, position of each in `context`, the single words that are
    ASCII as bytes)."""
    order: dict[str, int] = {}
    for i, word in enumerate(context):
        order.setdefault(word, i)
    words = frozenset(w for w in context if " " not in w)
    ascii_words = frozenset(w.encode() for w in words if w.isascii())
    return words, tuple(w for w in order if " " in w), order, ascii_words


def normalise_field(field: str) -> str:
    return "".join(ch for ch in field.lower() if ch.isalnum())


# The ASCII bytes that are not digits. bytes.translate deletes them in one C loop, where
# str.translate looks each distinct character up in a dict (4,700 -> 1,800 instructions a
# call over the bench corpus's candidates, callgrind).
_ASCII_NON_DIGITS = bytes(c for c in range(128) if not 48 <= c <= 57)


def digits(text: str) -> str:
    """The characters of `text` that are digits (``str.isdigit``), in order."""
    if text.isascii():
        return text.encode("ascii").translate(None, _ASCII_NON_DIGITS).decode("ascii")
    return "".join(ch for ch in text if ch.isdigit())


def scan_reference(
    recognizer: Recognizer,
    text: str,
    *,
    field: str | None = None,
    min_score: float = 0.0,
    beside: Collection[str] | None = None,
) -> Iterator[Finding]:
    """The simple, obviously-correct scan of one recognizer: every pattern on its own with
    ``re.finditer``. The engine's single-pass scan must agree with it; recognizer tests
    use it. `beside`: the entities of the other recognizers scanning with it (None: every
    one, as in the registry's engine)."""
    rescore = beside is None or recognizer.rescore_needs <= set(beside)
    field_ctx = recognizer.field_is_context(field)
    seen: set[tuple[int, int]] = set()
    for pattern in recognizer.patterns:
        for m in re.finditer(pattern.regex, text):
            span = (m.start(), m.end())
            if span in seen or m.start() == m.end():
                continue
            finding = evaluate(
                recognizer,
                pattern,
                text,
                m.start(),
                m.end(),
                field_ctx=field_ctx,
                field=field,
                rescore=rescore,
            )
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
    field: str | None = None,
    rescore: bool = True,
) -> Finding | None:
    """Validate one candidate and apply context; shared by the reference scan and the
    engine so both score identically. `rescore`: whether `Recognizer.rescore` runs (the
    recognizers of its `rescore_needs` scan too)."""
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
    if rescore:
        score = recognizer.rescore(text, start, end, score, word, field)
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
