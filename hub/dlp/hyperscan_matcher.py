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

from hub.dlp import hs_cache
from hub.dlp.matchers import Occurrences, PatternSpec, Scan, Window, Windows
from hub.dlp.prefilter import NUL, STAND_IN, UnsupportedPattern, bounded_prefilter

_CACHE: dict[tuple[Any, ...], tuple[Any, frozenset[int], frozenset[int]]] = {}
# Shared by every text without hits (never written to): saves a dict per text.
_NOTHING: dict[Any, Any] = {}
# Decimal digits other than 0-9: the matcher's \d is [0-9], so texts holding them are
# searched with every pattern (see hub.dlp.prefilter). None is in Latin-1 (the first is
# U+0660), so only a batch with a character past U+00FF is searched for them.
_OTHER_DIGIT = re.compile(r"[^\D0-9]")
# Latin-1 byte -> the byte scanned: ASCII as itself, the rest as the stand-in. (Scanning
# the Latin-1 bytes as they are, with 0x80-0xFF in every class that holds the stand-in,
# saved this translation but cost hyperscan more: 93.2 -> 93.5 M instructions a pass.)
_STAND_IN_BYTES = bytes(range(128)) + STAND_IN.encode() * 128
# Patterns whose matches may be longer report their start (SOM): PEM blocks and JWTs, whose
# windows would otherwise reach thousands of characters back. Below that, SOM costs more
# than it saves: with it for every pattern wider than 32 characters (phones, IPs, IBANs,
# tokens, e-mail), the hyperscan pass alone ran at 40 MB/s, without at 68 MB/s, and the
# engine ran 3 % more instructions per MB (callgrind, bench corpus).
_WIDE = 1000
# How `HyperscanMatcher._database` picks a pattern's flags, as part of its cache key (change
# it with that logic): SOM first where the pattern is wide, then none.
_TRIES = "som-if-wide,then-plain/1"
_FAR = 1 << 60  # past the end of any scanned data (and a short int for mypyc)
# Texts a hit past the current one's is looked for in, one by one, before bisecting: the
# next text with a hit is mostly one or two on (1,945 texts, ~1,000 with hits).
_PROBE = 8


def _stand_in(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each character the codec cannot encode as one `STAND_IN`
    byte (the matcher encodes Latin-1, then turns its upper half into the stand-in)."""
    if not isinstance(error, UnicodeEncodeError):  # pragma: no cover - encoding only
        raise error
    return STAND_IN * (error.end - error.start), error.end


codecs.register_error("hub-dlp-stand-in", _stand_in)

# Per text: pattern -> [(first possible start, last possible start)] of its matches, in
# characters.
Intervals = dict[int, list[tuple[int, int]]]


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
    # Most blocks of code points have no case at all: a block whose lower-casing changes
    # nothing is skipped in one C call, and only the others are read character by
    # character (the whole range one by one was a third of the engine's start-up).
    for block in range(0, 0x110000, _BLOCK):
        chars = "".join(map(chr, range(block, block + _BLOCK)))
        if chars.lower() == chars:
            continue
        for ch in chars:
            low = ch.lower()
            if low != ch:
                out.setdefault(low[0], set()).add(ch)
    return {k: "".join(sorted(v)) for k, v in out.items()}


_BLOCK = 128


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
        self.recognizer_of = [spec.recognizer for spec in specs]

    def _database(
        self, exprs: list[_Expression], literals: dict[str, int]
    ) -> tuple[Any, frozenset[int], frozenset[int]]:
        """A block-mode database of the patterns and the literals, which patterns report
        their start, and which are left out. Each pattern is tried with SOM (when its matches
        can be long), then without; one that has no `bounded_prefilter` or that hyperscan
        cannot take is left out, and the engine searches every text with it. Compiled once
        per process (`_CACHE`), and kept on disk for the next process (`hub.dlp.hs_cache`)."""
        hs = self._hs
        key = (tuple(exprs), tuple(literals.items()))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        # Everything the compilation below reads: each expression with the extended
        # parameters it gets and whether it may take SOM, and the literals (their own
        # parameters are fixed). The order of the tries is code: `_TRIES` names it.
        material = (
            _TRIES,
            tuple((e, _min_length(hs, e.shortest), self.specs[e.id].width > _WIDE) for e in exprs),
            tuple(literals.items()),
            _min_length(hs, 0),
        )
        stem = hs_cache.key(material)
        stored = hs_cache.load(hs, stem, ("som", "unscanned"))
        if stored is not None:
            db, facts = stored
            cached = (db, frozenset(facts["som"]), frozenset(facts["unscanned"]))
            _CACHE[key] = cached
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
        hs_cache.store(hs, stem, db, {"som": sorted(som), "unscanned": sorted(unscanned)})
        cached = _CACHE[key] = (db, frozenset(som), frozenset(unscanned))
        return cached

    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        count = len(texts)
        data, starts, latin1 = _joined(texts)
        contexts: list[Occurrences] = [_NOTHING] * count
        intervals: list[Intervals] = [_NOTHING] * count
        if self.main is not None:
            collector = _Collector(self, starts, list(range(count)), intervals, contexts)
            self.main.scan(data, match_event_handler=collector.on_match)
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
                collector = _Collector(self, starts, open_texts, intervals, contexts)
                collector.field_context = field_context  # a hit counts where it has context
                self.gated.scan(data, match_event_handler=collector.on_match)
        windows: list[Windows] = [_NOTHING] * count
        unscanned, reaches, widths = self.unscanned, self.reaches, self.widths
        for k in range(count):
            text_intervals = intervals[k]
            if text_intervals is _NOTHING:
                continue
            n = len(texts[k])
            found: Windows = _NOTHING
            for idx, spans in text_intervals.items():
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
        if not latin1:
            n_specs = len(self.specs)
            for k, text in enumerate(texts):
                if not text.isascii() and _OTHER_DIGIT.search(text):
                    n = len(text)
                    windows[k] = {idx: [(0, n, n)] for idx in range(n_specs)}
        return windows, contexts


class _Collector:
    """Sorts the hits of one scan, as hyperscan reports them (`on_match` is the scan's
    match handler), into the intervals where a real match can start — from the first
    possible start to the last, in characters: [start of the prefilter match (or end
    minus the width, without SOM), end - trail - shortest] — and into context word
    occurrences. `starts`: each scanned text's byte offset, `texts_of`: its index in the
    batch. With `field_context` set (the context-gated patterns' scan), a hit counts only
    in a text where its recognizer has context.

    Sorting each hit as it comes, rather than from a list of them after the scan, saves a
    tuple per hit and a pass over them; the intervals are per text and keyed by pattern,
    not by a (pattern, text) tuple built and hashed per hit. With the text lookup below
    (a bisect was a Python call per text with hits), the sorting went from 8.5 to 5.5 M
    instructions a pass over the bench corpus, the matcher from 36.1 to 29.6 M
    (callgrind)."""

    field_context: Sequence[frozenset[int]] | None

    def __init__(
        self,
        matcher: HyperscanMatcher,
        starts: list[int],
        texts_of: list[int],
        intervals: list[Intervals],
        contexts: list[Occurrences],
    ) -> None:
        self.n_specs = len(matcher.specs)
        self.shapes = matcher.shapes
        self.literals = matcher.literals
        self.recognizer_of = matcher.recognizer_of
        self.starts = starts
        self.texts_of = texts_of
        self.intervals = intervals
        self.contexts = contexts
        self.field_context = None
        self.n_texts = len(starts)
        # The text of a hit: hyperscan reports hits almost always in the order of their
        # ends (a few dozen out of order in thousands), so the text of the previous hit,
        # [base, following) in the joined data, is tried first, then the next few texts;
        # only a hit further on or out of order is bisected.
        self.j = 0
        self.base = starts[0]
        self.following = starts[1] if self.n_texts > 1 else _FAR

    def on_match(self, idx: int, at: int, to: int, _flags: int, _context: object) -> None:
        last = to - 1
        base = self.base
        if not base <= last < self.following:
            self._locate(last)
            base = self.base
        k = self.texts_of[self.j]
        start, end = at - base, to - base
        if idx < self.n_specs:
            field_context = self.field_context
            if field_context is not None:
                rid = self.recognizer_of[idx]
                if rid not in self.contexts[k] and rid not in field_context[k]:
                    return
            som, lead, back, cut = self.shapes[idx]
            span = (start + lead if som else end - back, end - cut)
            found = self.intervals[k]
            if found is _NOTHING:
                found = self.intervals[k] = {}
            spans = found.get(idx)
            if spans is None:
                found[idx] = [span]
            else:
                spans.append(span)
            return
        rids, length = self.literals[idx]
        span = (end - length, end)
        occurrences = self.contexts[k]
        if occurrences is _NOTHING:
            occurrences = self.contexts[k] = {}
        for rid in rids:
            found_spans = occurrences.get(rid)
            if found_spans is None:
                occurrences[rid] = [span]
            else:
                found_spans.append(span)

    def _locate(self, last: int) -> None:
        """Make the text holding byte `last` the current one."""
        starts, n_texts = self.starts, self.n_texts
        j = self.j
        if last >= self.following:
            for _ in range(_PROBE):
                j += 1
                following = starts[j + 1] if j + 1 < n_texts else _FAR
                if last < following:
                    self.j, self.base, self.following = j, starts[j], following
                    return
        j = bisect_right(starts, last) - 1
        self.j, self.base = j, starts[j]
        self.following = starts[j + 1] if j + 1 < n_texts else _FAR


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
    `STAND_IN` byte; each text's offset; whether all is Latin-1 (no character past
    U+00FF).

    Latin-1 text (all of the bench corpus's non-ASCII text: accented names) is encoded
    as Latin-1, a copy, and its upper half turned into the stand-in by one
    ``bytes.translate``; only the characters past U+00FF go through the codec error
    handler, one Python call per run of them. With the handler for every non-ASCII run
    the join cost 6.0 M instructions per pass over the bench corpus (callgrind), 4.8 M
    of them in the encoder's error path."""
    buffer = NUL + NUL.join(texts) + NUL
    latin1 = True
    if buffer.isascii():
        data = buffer.encode("ascii")
    else:
        try:
            data = buffer.encode("latin-1")
        except UnicodeEncodeError:
            latin1 = False
            data = buffer.encode("latin-1", "hub-dlp-stand-in")
        data = data.translate(_STAND_IN_BYTES)
    starts = []
    pos = 1
    for text in texts:
        starts.append(pos)
        pos += len(text) + 1
    return data, starts, latin1
