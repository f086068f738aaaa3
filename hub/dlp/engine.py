"""The detection engine: one pass over the text with a multi-pattern matcher to find where
patterns may match, then the exact Python pattern and the recognizer's validator only
there.

A matcher (the backend, `hub.dlp.matchers`) answers, per text, *which* patterns may match
and *where*: windows that provably hold every real match of a pattern. The engine runs the
pattern's exact ``re`` with ``finditer`` over each window, so the findings are exactly those
of `hub.dlp.base.scan_reference` per recognizer (tested on the corpus, every recognizer
table, non-ASCII and random texts, on every backend). Why the windows are enough is told
where they are made (`hub.dlp.hyperscan_matcher`): every real match is also a match of
the pattern's prefilter, which reports where it may start and end; a window searched from
there, up to the last possible start plus how far the regex looks (``reach``), finds it,
and windows are kept far enough apart that ``finditer`` over each gives what it gives over
the whole text. On a text with no character past U+00FF the pattern runs as specialised to
Latin-1 (`hub.dlp.latin1`): the same matches, found faster.

What runs per candidate is kept to what can change the answer at the caller's
``min_score`` (each a shortcut to `scan_reference`'s result, never a change of it):

- a pattern whose recognizer needs context (``context_required``, or a pattern
  ``ceiling`` under ``min_score``) is skipped in a text where none of the recognizer's
  context words occurs and the field name is not its context; a candidate of it is
  skipped when no context word lies within its context window (the matcher locates the
  words in the same pass);
- a candidate whose `Recognizer.ceiling` cannot reach ``min_score`` is dropped before its
  validator runs; context is looked up before validation only for candidates that need
  it, else only for candidates that validated.

`scan_record` scans all string fields of a record in one matcher call; `scan_records` does
the same for a batch of records.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from hub.dlp.base import CONTEXT_BOOST, CONTEXT_WINDOW, Finding, Pattern, Recognizer
from hub.dlp.hyperscan_matcher import HyperscanMatcher
from hub.dlp.latin1 import is_latin1, specialised
from hub.dlp.matchers import (
    Matcher,
    NoMatcher,
    Occurrences,
    PatternSpec,
    Re2Matcher,
    ReMatcher,
    Windows,
)
from hub.dlp.prefilter import (
    literal_prefix,
    max_width,
    min_width,
    prefilter,
    reach,
    strip_lookarounds,
)

Backend = Literal["auto", "hyperscan", "re2", "re"]
FIELD_CONTEXT = "field name"  # the context word reported when the field name is context
# Builds a named tuple from all its fields: calling the class runs the generated Python
# ``__new__`` (~1,600 instructions a finding, and two per finding: Finding, FieldFinding);
# this is the C call that ``__new__`` ends in.
_tuple_new: Any = tuple.__new__
_FIELD_CACHE_SIZE = 4096
_ROUNDED_SIZE = 1024
_BEFORE, _AFTER = CONTEXT_WINDOW, CONTEXT_WINDOW // 2  # the context window of base.context_in

__all__ = [
    "Backend",
    "Engine",
    "FieldFinding",
    "dedupe",
    "prefilter",
    "strip_lookarounds",
    "walk_strings",
]


# A compiled pattern's ``scanner(text, pos, endpos)``: what ``finditer`` iterates over (its
# ``search`` gives the next match, None at the end), without the iterator around it.
Scanner = Callable[[str, int, int], Any]


class _Entry(NamedTuple):
    """One pattern as the confirmation loop uses it (a tuple: unpacked once per window)."""

    scanner: Scanner  # the pattern's
    latin1_scanner: Scanner  # the same for Latin-1 text (`hub.dlp.latin1`), faster
    rid: int  # index of the recognizer
    multi: bool  # the recognizer has other patterns (their spans are not reported twice)
    required: bool  # the recognizer reports nothing without context
    alone: float  # best score of a candidate without context
    with_context: float  # best score of a candidate with context
    ceiling: Callable[[str, Pattern], float] | None  # per-candidate ceiling, when refined
    validate: Callable[[str, Pattern], float | None]
    # `Recognizer.rescore`, where the recognizer overrides it
    rescore: Callable[[str, int, int, float, str | None, str | None], float] | None
    context_in: Callable[[str, int, int], str | None]
    # For `_context_at`: word -> its rank in the recognizer's context (None where
    # _context_at does not give context_in's answer: an overridden context_in), and each
    # phrase with its rank
    words: dict[str, int] | None
    phrases: tuple[tuple[str, int], ...]
    validated_score: float
    entity: str
    recognizer_name: str
    pattern: Pattern


class FieldFinding(NamedTuple):
    """A finding in one field of a structured record (``field`` is the dotted path)."""

    field: str
    finding: Finding


class Engine:
    def __init__(self, recognizers: Sequence[Recognizer], backend: Backend = "auto") -> None:
        self.recognizers = list(recognizers)
        self.entries: list[_Entry] = []
        specs: list[PatternSpec] = []
        entities = frozenset(r.entity for r in self.recognizers)
        for rid, r in enumerate(self.recognizers):
            shaped = type(r).ceiling is not Recognizer.ceiling
            rescored = type(r).rescore is not Recognizer.rescore and r.rescore_needs <= entities
            for p in r.patterns:
                self.entries.append(
                    _Entry(
                        getattr(re.compile(p.regex), "scanner"),  # noqa: B009 - untyped
                        getattr(specialised(p.regex), "scanner"),  # noqa: B009
                        rid,
                        len(r.patterns) > 1,
                        r.context_required,
                        round(min(1.0, p.ceiling), 4),
                        round(min(1.0, p.ceiling + CONTEXT_BOOST), 4),
                        r.ceiling if shaped else None,
                        r.validate,
                        r.rescore if rescored else None,
                        r.context_in,
                        *_context_words(type(r)),
                        r.validated_score,
                        r.entity,
                        r.name,
                        p,
                    )
                )
                specs.append(
                    PatternSpec(
                        p.regex,
                        p.prefilter or p.regex,
                        rid,
                        r.context_required,
                        max_width(p.regex),
                        min_width(p.regex),
                        reach(p.regex),
                        literal_prefix(p.regex),
                    )
                )
        self.backend = self._pick(backend)
        matcher: Matcher = NoMatcher()
        if specs:
            if self.backend == "hyperscan":
                matcher = HyperscanMatcher(specs, [r.context for r in self.recognizers])
            elif self.backend == "re2":
                matcher = Re2Matcher(specs)
            else:
                matcher = ReMatcher(specs)
        self._matcher = matcher
        self._field_context_cache: dict[str | None, frozenset[int]] = {None: frozenset()}
        # ceiling -> (best score without context, with context), rounded as scores are
        self._reachable: dict[float, tuple[float, float]] = {}
        # score -> round(score, 4), see `_rounded`
        self._rounded: dict[float, float] = {}

    @staticmethod
    def _pick(backend: Backend) -> Literal["hyperscan", "re2", "re"]:
        if backend == "auto":  # by measurement (bench.dlp_engine): hyperscan > re2 > re
            for name in ("hyperscan", "re2"):
                if _available(name):
                    return name
            return "re"
        if backend not in ("hyperscan", "re2", "re"):
            raise ValueError(f"unknown backend {backend!r}; known: auto, hyperscan, re2, re")
        if backend != "re":
            importlib.import_module(backend)  # ImportError when not installed
        return backend

    def _field_context(self, field: str | None) -> frozenset[int]:
        """Indexes of the recognizers for which `field` names context."""
        found = self._field_context_cache.get(field)
        if found is None:
            if len(self._field_context_cache) >= _FIELD_CACHE_SIZE:
                self._field_context_cache = {None: frozenset()}
            found = self._field_context_cache[field] = frozenset(
                rid for rid, r in enumerate(self.recognizers) if r.field_is_context(field)
            )
        return found

    # -- scanning ----------------------------------------------------------------------
    def scan_text(
        self, text: str, *, field: str | None = None, min_score: float = 0.0
    ) -> list[Finding]:
        """Findings with overlaps resolved (the strongest wins)."""
        return dedupe(self.scan_text_all(text, field=field, min_score=min_score))

    def scan_text_all(
        self, text: str, *, field: str | None = None, min_score: float = 0.0
    ) -> list[Finding]:
        """Every recognizer's findings, overlaps kept: per recognizer exactly what
        `scan_reference` finds, in the same order."""
        return self.scan_texts_all([text], [field], min_score=min_score)[0]

    def scan_texts(
        self,
        texts: Sequence[str],
        fields: Sequence[str | None] | None = None,
        *,
        min_score: float = 0.0,
    ) -> list[list[Finding]]:
        """`scan_text` for many texts with one matcher call: findings per text."""
        return [dedupe(found) for found in self.scan_texts_all(texts, fields, min_score=min_score)]

    def scan_texts_all(
        self,
        texts: Sequence[str],
        fields: Sequence[str | None] | None = None,
        *,
        min_score: float = 0.0,
    ) -> list[list[Finding]]:
        """`scan_text_all` for many texts (``fields[i]`` names text i's field) with one
        matcher call: findings per text, offsets into that text."""
        if fields is not None and len(fields) != len(texts):
            raise ValueError("texts and fields differ in length")
        if math.isnan(min_score):  # the checks below read "below": none is, against NaN
            raise ValueError("min_score is NaN")
        if not any(texts):
            return [[] for _ in texts]
        # self._…(…) each time: compiled, that is a direct call, where a bound method kept in a
        # local is called as a Python object.
        by_field = (
            [self._field_context(f) for f in fields] if fields else [frozenset()] * len(texts)
        )
        windows, contexts = self._matcher.scan(texts, by_field)
        return [
            self._confirm(
                text,
                fields[k] if fields else None,
                text.isascii() or is_latin1(text),
                by_field[k],
                windows[k],
                None if contexts is None else contexts[k],
                min_score,
            )
            if windows[k]
            else []
            for k, text in enumerate(texts)
        ]

    def _confirm(
        self,
        text: str,
        field: str | None,
        latin1: bool,
        by_field: frozenset[int],
        windows: Windows,
        context: Occurrences | None,
        min_score: float,
    ) -> list[Finding]:
        """The findings of the patterns in `windows` (recognizer order, then pattern order),
        as `hub.dlp.base.evaluate` scores them, at or above `min_score`. `field`: the
        structured field `text` is the value of (None: free text). `latin1`: no
        character of `text` is past U+00FF (the patterns specialised to Latin-1 apply).
        `context`: where each recognizer's context words occur in the text (None: not
        known)."""
        entries = self.entries
        reachable, rounded = self._reachable, self._rounded
        findings: list[Finding] = []
        seen: set[tuple[int, int, int]] = set()
        for idx in sorted(windows) if len(windows) > 1 else windows:
            (
                scanner,
                latin1_scanner,
                rid,
                multi,
                required,
                alone,
                with_context,
                ceiling,
                validate,
                rescore,
                context_in,
                words,
                phrases,
                validated_score,
                entity,
                recognizer_name,
                pattern,
            ) = entries[idx]
            field_ctx = rid in by_field
            occurrences = None if context is None else context.get(rid)
            possible = field_ctx or context is None or occurrences is not None
            # The words `_context_at` reads off the matcher's occurrences, where that gives
            # context_in's answer (Latin-1 text, the word's places known); else None.
            known = words if occurrences is not None and latin1 else None
            spans = occurrences if occurrences is not None else _NO_SPANS
            if possible:
                if with_context < min_score:
                    continue
            elif required or alone < min_score:
                continue
            pattern_needs_context = required or alone < min_score
            if latin1:
                scanner = latin1_scanner
            for pos, last_start, endpos in windows[idx]:
                # finditer's loop, ended as soon as no further match can be the window's:
                # the next match starts at or after this one's end (at it after an empty
                # match), so once that is past the window's last start the search that
                # would find it is skipped (it ran on to `endpos`, up to the pattern's
                # reach further: 2/3 of the e-mail pattern's search time in its windows).
                search: Callable[[], re.Match[str] | None] = scanner(text, pos, endpos).search
                m = search()
                while m is not None:
                    start, end = m.span()
                    if start > last_start:
                        break
                    candidate_match = m
                    m = search() if end <= last_start or start == end else None
                    if start == end or (multi and (rid, start, end) in seen):
                        continue
                    # can a context word be in this candidate's window?
                    near = field_ctx or context is None
                    if not near and occurrences is not None:
                        lo, hi = start - _BEFORE, end + _AFTER
                        for cs, ce in occurrences:
                            if (lo <= cs and ce <= start) or (end <= cs and ce <= hi):
                                near = True
                                break
                    if pattern_needs_context and not near:
                        continue
                    candidate = candidate_match.group()
                    needs_context = pattern_needs_context
                    if ceiling is not None:
                        best = ceiling(candidate, pattern)
                        alone_best, context_best = reachable.get(best) or _reachable(
                            reachable, best
                        )
                        if (context_best if near else alone_best) < min_score:
                            continue
                        needs_context = required or alone_best < min_score
                    word: str | None = None
                    look_later = False
                    if field_ctx:
                        word = FIELD_CONTEXT
                    elif not near:
                        pass
                    elif needs_context:
                        word = (
                            context_in(text, start, end)
                            if known is None
                            else _context_at(text, start, end, spans, known, phrases)
                        )
                        if word is None:
                            continue
                    else:
                        look_later = True
                    score = validate(candidate, pattern)
                    if score is None:
                        continue
                    if look_later:
                        word = (
                            context_in(text, start, end)
                            if known is None
                            else _context_at(text, start, end, spans, known, phrases)
                        )
                    validated = score >= validated_score
                    if word is not None:
                        score = min(1.0, score + CONTEXT_BOOST)
                    if rescore is not None:
                        score = rescore(text, start, end, score, word, field)
                    exact = rounded.get(score)
                    score = _rounded(rounded, score) if exact is None else exact
                    if score < min_score:
                        continue
                    if multi:
                        seen.add((rid, start, end))
                    findings.append(
                        _tuple_new(
                            Finding,
                            (
                                entity,
                                start,
                                end,
                                score,
                                recognizer_name,
                                pattern.name,
                                word,
                                validated,
                            ),
                        )
                    )
        return findings

    def scan_record(
        self,
        record: Mapping[str, Any],
        *,
        declared: Mapping[str, str] | None = None,
        min_score: float = 0.0,
        fields: Iterable[str] | None = None,
    ) -> list[FieldFinding]:
        """Scan every string in a structured record, all fields in one matcher call. A
        field the schema declares (``pii``) is not scanned: it is reported whole with its
        declared entity and score 1.0."""
        return self.scan_records([record], declared=declared, min_score=min_score, fields=fields)[0]

    def scan_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        declared: Mapping[str, str] | None = None,
        min_score: float = 0.0,
        fields: Iterable[str] | None = None,
        overlaps: bool = False,
    ) -> list[list[FieldFinding]]:
        """`scan_record` for a batch of records with one matcher call: the findings of each
        record, in order. With `overlaps`, a field's findings are every recognizer's, as
        `scan_text_all` gives them, for a caller that resolves them itself."""
        wanted = set(fields) if fields is not None else None
        out: list[list[FieldFinding]] = [[] for _ in records]
        owners: list[int] = []
        paths: list[str] = []
        texts: list[str] = []
        for i, record in enumerate(records):
            for key, value in record.items():
                if type(value) is str:
                    path = key if type(key) is str else str(key)
                    if not path or (wanted is not None and path not in wanted):
                        continue
                    entity = declared.get(path) if declared else None
                    if entity is not None:
                        out[i].append(FieldFinding(path, _declared(entity, value)))
                    elif value:
                        owners.append(i)
                        paths.append(path)
                        texts.append(value)
                elif isinstance(value, Mapping | list | tuple | str):
                    for path, text in walk_strings(value, str(key)):
                        if wanted is not None and path not in wanted:
                            continue
                        entity = declared.get(path) if declared else None
                        if entity is not None:
                            out[i].append(FieldFinding(path, _declared(entity, text)))
                        elif text:
                            owners.append(i)
                            paths.append(path)
                            texts.append(text)
        if texts:
            found = self.scan_texts_all(texts, paths, min_score=min_score)
            for i, path, findings in zip(owners, paths, found, strict=True):
                if findings:
                    out[i].extend(
                        _tuple_new(FieldFinding, (path, f))
                        for f in (
                            dedupe(findings) if len(findings) > 1 and not overlaps else findings
                        )
                    )
        return out


def _context_words(
    cls: type[Recognizer],
) -> tuple[dict[str, int] | None, tuple[tuple[str, int], ...]]:
    """The context of `cls` as `_context_at` reads it: each single word that can be a
    ``[a-z0-9]+`` token, and each phrase, with its rank in ``cls.context`` (a word listed
    twice ranks where it is first). None for the words when `cls` has its own
    ``context_in``, which `_context_at` does not follow."""
    if any("context_in" in vars(k) for k in cls.__mro__ if k is not Recognizer):
        return None, ()
    words: dict[str, int] = {}
    phrases: dict[str, int] = {}
    for rank, word in enumerate(cls.context):
        if " " in word:
            phrases.setdefault(word, rank)
        elif _TOKEN.fullmatch(word):
            words.setdefault(word, rank)
    return words, tuple(phrases.items())


_TOKEN = re.compile(r"[a-z0-9]+")
_NO_SPANS: list[tuple[int, int]] = []  # never written to
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _context_at(
    text: str,
    start: int,
    end: int,
    occurrences: list[tuple[int, int]],
    words: dict[str, int],
    phrases: tuple[tuple[str, int], ...],
) -> str | None:
    """`Recognizer.context_in`'s answer (`_context_words`: its words and phrases), in a text
    with no character past U+00FF, with the words read off where the matcher found them
    (`occurrences`) instead of tokenising the window.

    The matcher reports every place a word may start a token (a word where no ASCII letter
    or digit is before it; in any case form), so each token ``context_in`` would take is
    one of them; what is checked here is the rest of its rule: that the place lies in the
    window, that a token starts there (the occurrences of a phrase's longest word are
    anywhere) and ends where the word does (no ASCII letter or digit before it, and none
    after it unless the window's edge cuts it there — in Latin-1 text nothing else
    lower-cases into one) and that the place holds the word (a matched stand-in byte may
    be another character). Phrases are looked for as ``context_in`` does, in the lower-cased
    window. At 18,600 instructions a call (callgrind, bench corpus), the lookup was 5 % of
    a scan; this is a few hundred for the one or two occurrences in a window, and a few
    thousand more where there are phrases."""
    lo, hi = start - _BEFORE, end + _AFTER
    n = len(text)
    found: str | None = None
    best = -1
    for cs, ce in occurrences:
        if lo <= cs and ce <= start:
            edge = start
        elif end <= cs and ce <= hi:
            edge = hi
        else:
            continue
        if (cs and text[cs - 1] in _ALNUM) or (ce < edge and ce < n and text[ce] in _ALNUM):
            continue
        word = text[cs:ce].lower()
        rank = words.get(word)
        if rank is not None and (best < 0 or rank < best):
            found, best = word, rank
    if phrases:
        window = text[lo if lo > 0 else 0 : start].lower() + " " + text[end:hi].lower()
        for phrase, rank in phrases:
            if (best < 0 or rank < best) and phrase in window:
                found, best = phrase, rank
    return found


def _reachable(cache: dict[float, tuple[float, float]], ceiling: float) -> tuple[float, float]:
    found = cache[ceiling] = (
        round(min(1.0, ceiling), 4),
        round(min(1.0, ceiling + CONTEXT_BOOST), 4),
    )
    return found


def _rounded(cache: dict[float, float], score: float) -> float:
    """``round(score, 4)``, kept in `cache`: a finding's score is one of a few values (the
    patterns' and validators' scores, with the context boost or without), and round() to
    digits goes through a decimal string (~2,000 instructions a finding; 1.8 M a pass over
    the bench corpus, callgrind). Zero is not kept (0.0 and -0.0 are one key, rounded to
    two values); nor is anything once the cache holds `_ROUNDED_SIZE` scores."""
    found = round(score, 4)
    if score != 0.0 and len(cache) < _ROUNDED_SIZE:
        cache[score] = found
    return found


def _declared(entity: str, text: str) -> Finding:
    return Finding(entity, 0, len(text), 1.0, "schema", "declared", None, True)


def _available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Resolve overlaps: keep the strongest finding (score, then validated, then longer
    span) and drop any finding that overlaps one already kept."""
    if len(findings) < 2:
        return list(findings)
    ranked = sorted(
        findings, key=lambda f: (-f.score, not f.validated, -(f.end - f.start), f.start)
    )
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def walk_strings(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """(dotted path, text) for every string in a nested record."""
    if isinstance(value, str):
        if prefix:
            yield prefix, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{prefix}.{i}")
