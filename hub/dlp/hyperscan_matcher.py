"""The hyperscan matcher: one scan over a batch of texts finds where every pattern may match
and where every recognizer's context words are.

- Texts are joined with NUL, which no pattern matches, so no match crosses texts; every
  non-ASCII character is scanned as one stand-in byte (`hub.dlp.prefilter.STAND_IN`), so
  offsets are character offsets.
- Each pattern runs as its `bounded_prefilter`: its boundaries consumed (a digit-run pattern
  reports once per run, not once per digit), at least as long as the pattern's shortest
  match, and — for patterns whose matches can be long — with the start of match (SOM).
- A real match of the pattern is a match of the prefilter, so it starts in [prefilter
  start, prefilter end - consumed end - shortest match] (without SOM: from the end minus
  the pattern's width). These intervals are merged when closer than the pattern's width
  (see `_merged`) into the windows the engine searches.
- Context words run in the same scan as literals in every case form their lower-casing can
  come from (a word only where a word can start); their positions let the engine skip
  context lookups that cannot succeed.
- The patterns of context-gated recognizers (``context_required``: digit and letter runs
  that mean nothing without context) are in a second database, scanned only over the texts
  where one of them has a context word or a field whose name is its context.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from hub.dlp.matchers import Occurrences, PatternSpec, Scan, Window, Windows
from hub.dlp.prefilter import NUL, STAND_IN, UnsupportedPattern, bounded_prefilter

_CACHE: dict[tuple[Any, ...], tuple[Any, frozenset[int], frozenset[int]]] = {}
# Shared by every text without hits (never written to): saves a dict per text.
_NOTHING: dict[Any, Any] = {}
# Decimal digits other than 0-9: the matcher's \d is [0-9], so texts holding them are
# searched with every pattern (see hub.dlp.prefilter).
_OTHER_DIGIT = re.compile(r"[^\D0-9]")
# Patterns whose matches may be longer report their start (SOM): PEM blocks and JWTs, whose
# windows would otherwise reach thousands of characters back. Below that, SOM costs more
# than it saves: with it for every pattern wider than 32 characters (phones, IPs, IBANs,
# tokens, e-mail), the hyperscan pass alone ran at 40 MB/s, without at 68 MB/s, and the
# engine ran 3 % more instructions per MB (callgrind, bench corpus).
_WIDE = 1000
_FAR = 1 << 60  # past the end of any scanned data (and a short int for mypyc)


def _stand_in(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each non-ASCII character as one `STAND_IN` byte."""
    if not isinstance(error, UnicodeEncodeError):  # pragma: no cover - encoding only
        raise error
    return STAND_IN * (error.end - error.start), error.end


codecs.register_error("hub-dlp-stand-in", _stand_in)

# (pattern, text) -> [(first possible start, last end)] of its matches, in characters
Intervals = dict[tuple[int, int], list[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class _Expression:
    id: int
    expression: str
    bounded: bool  # a bounded_prefilter (else a plain prefilter, in prefilter mode)
    shortest: int  # bytes: the pattern's shortest match and the neighbours consumed


@cache
def _lower_sources() -> dict[str, str]:
    """Character -> every character whose ``str.lower()`` starts with it (e.g. "k" ->
    "Kk\\u212a")."""
    out: dict[str, set[str]] = {}
    for code in range(0x110000):
        ch = chr(code)
        low = ch.lower()
        if low != ch:
            out.setdefault(low[0], set()).add(ch)
    return {k: "".join(sorted(v)) for k, v in out.items()}


def context_literal(word: str) -> str:
    """A hyperscan expression found wherever ``word`` can be a context word of
    `hub.dlp.base.Recognizer.context_in`: a word where a ``[a-z0-9]+`` token of the
    lower-cased text can start (not after an ASCII letter or digit), a phrase — by its
    longest word — anywhere."""
    piece = max(word.split(), key=len)
    head = "" if " " in word else "[^A-Za-z0-9]"
    sources = _lower_sources()
    parts = []
    for ch in piece:
        chars = {c if c.isascii() else STAND_IN for c in ch + sources.get(ch, "")}
        escaped = "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in sorted(chars))
        parts.append(escaped if len(chars) == 1 else "[" + escaped + "]")
    return head + "".join(parts)


class HyperscanMatcher:
    # Declared here: attributes of compiled classes (hub.dlp.native) are fixed slots.
    _hs: Any  # the hyperscan module
    gated: Any  # the database of the context-gated patterns, or None

    def __init__(self, specs: Sequence[PatternSpec], contexts: Sequence[tuple[str, ...]]) -> None:
        import hyperscan

        self._hs = hyperscan
        self.specs = specs
        self.lead: list[int] = []
        self.trail: list[int] = []
        main: list[_Expression] = []
        gated: list[_Expression] = []
        for idx, spec in enumerate(specs):
            try:
                b = bounded_prefilter(spec.prefilter)
                expr = _Expression(idx, b.expression, True, spec.min_width + b.lead + b.trail)
                self.lead.append(int(b.lead))
                self.trail.append(int(b.trail))
            except UnsupportedPattern:
                expr = _Expression(idx, "", False, 0)
                self.lead.append(0)
                self.trail.append(0)
            (gated if spec.gated else main).append(expr)
        literal_ids: dict[str, int] = {}
        recognizers: dict[int, set[int]] = {}
        lengths: dict[int, int] = {}
        for rid, words in enumerate(contexts):
            for word in words:
                expr_text = context_literal(word)
                lid = literal_ids.setdefault(expr_text, len(specs) + len(literal_ids))
                recognizers.setdefault(lid, set()).add(rid)
                lengths[lid] = len(max(word.split(), key=len))
        # literal id -> (recognizer indexes, length in characters)
        self.literals = {lid: (tuple(sorted(r)), lengths[lid]) for lid, r in recognizers.items()}
        self.gated_recognizers = frozenset(s.recognizer for s in specs if s.gated)
        self.main, som, unscanned = self._database(main, literal_ids)
        self.gated = None
        if gated:
            self.gated, som_gated, unscanned_gated = self._database(gated, {})
            som, unscanned = som | som_gated, unscanned | unscanned_gated
        self.som, self.unscanned = som, unscanned
        # per pattern: (reports its start, consumes a character before, how far back of the
        # end a match may start without SOM, how far back of the end it must start)
        self.shapes = [
            (
                idx in som,
                self.lead[idx],
                spec.width + self.trail[idx],
                self.trail[idx] + spec.min_width,
            )
            for idx, spec in enumerate(specs)
        ]
        self.widths = [spec.width for spec in specs]
        self.reaches = [spec.reach for spec in specs]

    def _database(
        self, exprs: list[_Expression], literals: dict[str, int]
    ) -> tuple[Any, frozenset[int], frozenset[int]]:
        """A block-mode database of the patterns and the literals, which patterns report
        their start, and which are left out. Each pattern is tried with SOM (when its matches
        can be long), then without; one that has no `bounded_prefilter` or that hyperscan
        cannot take is left out, and the engine searches every text with it."""
        hs = self._hs
        key = (tuple(exprs), tuple(literals.items()))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        ids, encoded, flags, ext = [], [], [], []
        som: set[int] = set()
        unscanned: set[int] = set()
        for e in exprs:
            tries = []
            if e.bounded:
                if self.specs[e.id].width > _WIDE:
                    tries.append((hs.HS_FLAG_SOM_LEFTMOST, e.shortest))
                tries.append((0, e.shortest))
            for flag, shortest in tries:
                try:
                    hs.Database().compile(
                        expressions=[e.expression.encode()],
                        ids=[e.id],
                        elements=1,
                        flags=[flag],
                        ext=[_min_length(hs, shortest)],
                    )
                except hs.error:
                    continue
                if flag & hs.HS_FLAG_SOM_LEFTMOST:
                    som.add(e.id)
                break
            else:
                unscanned.add(e.id)
                continue
            ids.append(e.id)
            encoded.append(e.expression.encode())
            flags.append(flag)
            ext.append(_min_length(hs, shortest))
        for text, lid in literals.items():
            ids.append(lid)
            encoded.append(text.encode())
            flags.append(0)
            ext.append(_min_length(hs, 0))
        db = None
        if ids:
            db = hs.Database()
            db.compile(expressions=encoded, ids=ids, elements=len(ids), flags=flags, ext=ext)
        cached = _CACHE[key] = (db, frozenset(som), frozenset(unscanned))
        return cached

    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        count = len(texts)
        data, starts, ascii_only = _joined(texts)
        hits: list[tuple[int, int, int]] = []
        add = hits.append

        def on_match(idx: int, start: int, end: int, _flags: int, _ctx: object) -> None:
            add((idx, start, end))

        if self.main is not None:
            self.main.scan(data, match_event_handler=on_match)
        contexts: list[Occurrences] = [_NOTHING] * count
        intervals: Intervals = {}
        self._collect(hits, starts, list(range(count)), intervals, contexts)
        if self.gated is not None:
            gated = self.gated_recognizers
            open_texts = [
                k
                for k in range(count)
                if (contexts[k] and not gated.isdisjoint(contexts[k]))
                or (field_context[k] and not gated.isdisjoint(field_context[k]))
            ]
            if open_texts:
                data, starts, _ = _joined([texts[k] for k in open_texts])
                hits.clear()
                self.gated.scan(data, match_event_handler=on_match)
                specs = self.specs
                allowed = [
                    (idx, start, end)
                    for idx, start, end in hits
                    if specs[idx].recognizer in contexts[k := open_texts[_text_of(starts, end)]]
                    or specs[idx].recognizer in field_context[k]
                ]
                self._collect(allowed, starts, open_texts, intervals, contexts)
        windows: list[Windows] = [_NOTHING] * count
        unscanned, reaches, widths = self.unscanned, self.reaches, self.widths
        for (idx, k), spans in intervals.items():
            n = len(texts[k])
            if len(spans) == 1:
                first, last = spans[0]
                first = max(first, 0)
                last = min(last, n)
                if last < first:
                    continue  # no real match can end here
                to = last + reaches[idx]
                found_windows = [(first, last, to if to < n else n)]
            else:
                found_windows = _merged(spans, n, widths[idx], reaches[idx])
                if not found_windows:
                    continue
            found = windows[k]
            if found is _NOTHING:
                found = windows[k] = {}
            found[idx] = found_windows
        if unscanned:  # patterns the matcher does not run: searched everywhere
            for k, text in enumerate(texts):
                if text:
                    found = windows[k]
                    if found is _NOTHING:
                        found = windows[k] = {}
                    found.update({idx: [(0, len(text), len(text))] for idx in unscanned})
        if not ascii_only:
            n_specs = len(self.specs)
            for k, text in enumerate(texts):
                if not text.isascii() and _OTHER_DIGIT.search(text):
                    n = len(text)
                    windows[k] = {idx: [(0, n, n)] for idx in range(n_specs)}
        return windows, contexts

    def _collect(
        self,
        hits: list[tuple[int, int, int]],
        starts: list[int],
        texts_of: list[int],
        intervals: Intervals,
        contexts: list[Occurrences],
    ) -> None:
        """Sort the hits of one scan (`starts`: each scanned text's byte offset, `texts_of`:
        its index in the batch) into the intervals where a real match can start — from the
        first possible start to the last, in characters: [start of the prefilter match
        (or end minus the width, without SOM), end - trail - shortest] — and into context
        word occurrences."""
        n_specs = len(self.specs)
        shapes, literals = self.shapes, self.literals
        # The text of a hit: hyperscan reports hits almost always in the order of their ends
        # (a few dozen out of order in thousands), so the text of the previous hit is tried
        # first, [base, following) in the joined data, and only a miss is bisected.
        n_texts = len(starts)
        j, base = 0, starts[0]
        following = starts[1] if n_texts > 1 else _FAR
        for idx, at, to in hits:
            if not base <= to - 1 < following:
                j = bisect_right(starts, to - 1) - 1
                base = starts[j]
                following = starts[j + 1] if j + 1 < n_texts else _FAR
            k = texts_of[j]
            start, end = at - base, to - base
            if idx < n_specs:
                som, lead, back, cut = shapes[idx]
                span = (start + lead if som else end - back, end - cut)
                key = (idx, k)
                spans = intervals.get(key)
                if spans is None:
                    intervals[key] = [span]
                else:
                    spans.append(span)
                continue
            rids, length = literals[idx]
            span = (end - length, end)
            occurrences = contexts[k]
            if occurrences is _NOTHING:
                occurrences = contexts[k] = {}
            for rid in rids:
                found = occurrences.get(rid)
                if found is None:
                    occurrences[rid] = [span]
                else:
                    found.append(span)


def _text_of(starts: list[int], end: int) -> int:
    return bisect_right(starts, end - 1) - 1


def _merged(spans: list[tuple[int, int]], n: int, width: int, reach: int) -> list[Window]:
    """Windows from the intervals of a pattern's matches in a text of `n` characters.

    Intervals closer than the pattern's width are merged, so a real match found in one
    window cannot reach into the next one's: between windows the full-text ``finditer``
    then finds nothing and is where a fresh search from the next window's start is. Each
    window is searched up to its last start plus the pattern's reach (so cutting the text
    there changes no match that starts in the window)."""
    out: list[Window] = []
    lo = hi = -1
    for lower, upper in sorted(spans):
        first, last = max(lower, 0), min(upper, n)
        if last < first:
            continue  # no real match can end here
        if hi >= 0 and first < hi + width:
            hi = max(hi, last)
            continue
        if hi >= 0:
            out.append((lo, hi, min(n, hi + reach)))
        lo, hi = first, last
    if hi >= 0:
        out.append((lo, hi, min(n, hi + reach)))
    return out


def _min_length(hs: Any, size: int) -> Any:
    """Hyperscan's extended parameter for "matches of at least `size` bytes" (0: none)."""
    return hs.ExpressionExt(hs.HS_EXT_FLAG_MIN_LENGTH if size else 0, 0, 0, size, 0, 0)


def _joined(texts: Sequence[str]) -> tuple[bytes, list[int], bool]:
    """The texts joined with NUL (and NUL around), each non-ASCII character as one
    `STAND_IN` byte; each text's offset; whether all is ASCII."""
    buffer = NUL + NUL.join(texts) + NUL
    ascii_only = buffer.isascii()
    data = buffer.encode("ascii", "hub-dlp-stand-in")
    starts = []
    pos = 1
    for text in texts:
        starts.append(pos)
        pos += len(text) + 1
    return data, starts, ascii_only
