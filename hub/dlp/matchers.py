"""The engine's multi-pattern matchers (backends). A matcher answers, for a batch of texts,
*which* patterns may match in each text and *where* (`Window` s that provably hold every
real match, see `hub.dlp.engine`), and — when it can — where each recognizer's context
words occur. It never decides a finding.

- `hub.dlp.hyperscan_matcher.HyperscanMatcher`: one hyperscan pass over the batch; windows
  around each match, context words located (the fast one).
- `Re2Matcher`: a google-re2 ``Set`` of the prefilters tells which patterns match somewhere
  in a text (no offsets); those are run over the whole text.
- `ReMatcher`: one alternation of the exact patterns finds the first position where any
  pattern matches; the patterns whose literal prefix occurs in the text run from there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.dlp.prefilter import prefilter, re2_syntax

# (search from, last accepted start, search to): character offsets in one text. The
# pattern's exact regex runs with finditer from the first to the third; matches that start
# after the second are not the window's (a later window, if any, holds them).
Window = tuple[int, int, int]
# Per text: pattern index -> its windows, left to right and not overlapping.
Windows = dict[int, list[Window]]
# Where a recognizer's context words occur in one text: recognizer index -> [(start, end)]
# of each occurrence of a context word (for a phrase, of its longest word), in any case.
Occurrences = dict[int, list[tuple[int, int]]]
# Per text: the windows, and the context word occurrences (None: the matcher does not look
# for them, so any recognizer may have context anywhere).
Scan = tuple[list[Windows], list[Occurrences] | None]


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """What a matcher needs of one pattern."""

    regex: str  # the exact pattern (ReMatcher runs it)
    prefilter: str  # what the other matchers run: `regex` or a simpler superset of it
    recognizer: int  # index of its recognizer
    gated: bool  # its recognizer reports nothing without context
    width: int  # longest possible match
    min_width: int  # shortest possible match
    reach: int  # how far right of a start the regex may look
    literal: str  # a literal every match starts with ("" when none)


class Matcher(Protocol):
    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        """`field_context[k]`: the recognizers for which text k's field name is context."""


class NoMatcher:
    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        return [{} for _ in texts], None


class Re2Matcher:
    def __init__(self, specs: Sequence[PatternSpec]) -> None:
        import re2

        options = re2.Options()
        options.max_mem = 512 << 20
        self.set = re2.Set.SearchSet(options)
        for spec in specs:
            self.set.Add(re2_syntax(prefilter(spec.prefilter)))
        self.set.Compile()

    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        out: list[Windows] = []
        match = self.set.Match
        for text in texts:
            n = len(text)
            out.append({idx: [(0, n, n)] for idx in match(text) or ()} if text else {})
        return out, None


class ReMatcher:
    def __init__(self, specs: Sequence[PatternSpec]) -> None:
        self.specs = specs
        self.gate = re.compile("|".join(f"(?:{s.regex})" for s in specs) or "(?!)")

    def scan(self, texts: Sequence[str], field_context: Sequence[frozenset[int]]) -> Scan:
        out: list[Windows] = []
        search = self.gate.search
        for text in texts:
            m = search(text)
            if m is None:
                out.append({})
                continue
            n, first = len(text), m.start()  # no pattern matches before `first`
            out.append(
                {
                    idx: [(first, n, n)]
                    for idx, s in enumerate(self.specs)
                    if not s.literal or s.literal in text
                }
            )
        return out, None
