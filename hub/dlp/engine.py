"""The detection engine: one pass over the text with a multi-pattern matcher to find where
patterns may match, then the exact Python pattern and the recognizer's validator only
there.

A matcher (the backend) answers, per text, *which* patterns may match and *where they may
end*; the engine then runs each such pattern's exact ``re`` with ``finditer`` over a window
that provably holds all of its real matches, so the findings are exactly those of
`hub.dlp.base.scan_reference` per recognizer (tested). Why the window is enough: every real
match of a pattern is also a match of its prefilter expression (lookarounds stripped,
bounded repeats widened — both only widen it), so its end is among the reported ends; a
match is at most ``width`` characters long and the regex looks at most ``reach``
characters right of a start. So searching from ``min(end) - width`` and accepting starts
up to ``max(end)`` with the text cut at ``max(end) + reach`` reproduces ``finditer`` over
the whole text.

Backends (``auto`` takes the first available; see ``python -m bench.dlp_engine``):
- ``hyperscan``: all prefilter expressions in one database (end offsets only: leftmost
  start-of-match is what made patterns "too large" and compiles take minutes), scanned
  once per batch of texts joined with a separator no pattern can cross. A pattern that
  still does not compile goes in prefilter mode and then only gates its text.
- ``re2``: a google-re2 ``Set`` of the prefilter expressions tells which patterns match
  somewhere in a text (no offsets); those are run over the whole text.
- ``re``: one alternation of the exact patterns finds the first position where any
  pattern matches (nothing found: nothing to do); the patterns whose literal prefix occurs
  in the text are then run from there.
"""

from __future__ import annotations

import importlib
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hub.dlp.base import Finding, Pattern, Recognizer, evaluate

Backend = Literal["auto", "hyperscan", "re2", "re"]
SEPARATOR = "\n\x00\n"  # joins a batch: \x00 is in no pattern's character classes
_WIDEN_FROM = 16  # bounded repeats {m,n} with n >= this become {m,} in prefilters
_sre: Any = importlib.import_module("re._parser")
_HS_CACHE: dict[tuple[bytes, ...], tuple[Any, frozenset[int]]] = {}

# (start search position, last accepted start, end position) per pattern index
Window = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    recognizer: Recognizer
    pattern: Pattern
    compiled: re.Pattern[str]
    width: int  # longest possible match
    reach: int  # how far right of a start the regex may look
    literal: str  # a literal every match starts with ("" when none)


@dataclass(frozen=True, slots=True)
class FieldFinding:
    """A finding in one field of a structured record (``field`` is the dotted path)."""

    field: str
    finding: Finding


# -- pattern analysis ------------------------------------------------------------------
def strip_lookarounds(regex: str, *, keep_lookahead: bool = False) -> str:
    """Remove every ``(?=…)``, ``(?!…)``, ``(?<=…)``, ``(?<!…)`` group (escape- and
    character-class-aware). The result matches a superset of the original. With
    ``keep_lookahead`` a lookahead's body is kept as a consuming group instead (used to
    measure how far right a regex looks)."""
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        if regex.startswith(("(?=", "(?!"), i) and keep_lookahead:
            j = _group_end(regex, i)
            out.append("(?:" + strip_lookarounds(regex[i + 3 : j - 1], keep_lookahead=True) + ")")
            i = j
            continue
        if regex.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = _group_end(regex, i)
            continue
        ch = regex[i]
        if ch == "\\":
            out.append(regex[i : i + 2])
            i += 2
            continue
        if ch == "[":
            j = _class_end(regex, i)
            out.append(regex[i:j])
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def prefilter(regex: str) -> str:
    """The expression a multi-pattern matcher runs: lookarounds stripped and long bounded
    repeats ``{m,n}`` widened to ``{m,}``. Matches a superset of `regex`."""
    return re.sub(
        r"(?<!\\)\{(\d+),(\d+)\}",
        lambda m: m.group(0) if int(m.group(2)) < _WIDEN_FROM else "{" + m.group(1) + ",}",
        strip_lookarounds(regex),
    )


def _max_width(regex: str) -> int:
    return int(_sre.parse(regex).getwidth()[1])


def _literal_prefix(regex: str) -> str:
    literal = _sre.LITERAL
    out = []
    for op, arg in _sre.parse(strip_lookarounds(regex)):
        if op is not literal:
            break
        out.append(chr(arg))
    return "".join(out)


def _class_end(regex: str, i: int) -> int:
    j = i + 1
    if j < len(regex) and regex[j] == "^":
        j += 1
    if j < len(regex) and regex[j] == "]":
        j += 1
    while j < len(regex) and regex[j] != "]":
        j += 2 if regex[j] == "\\" else 1
    return j + 1


def _group_end(regex: str, i: int) -> int:
    depth = 0
    j = i
    while j < len(regex):
        ch = regex[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j = _class_end(regex, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError("unbalanced group in pattern")


def _re2_syntax(expr: str) -> str:
    """Python's Unicode ``\\d``/``\\s``/``\\w`` in RE2 terms (RE2's are ASCII-only)."""
    classes = {"d": r"\p{Nd}", "s": r"\s\p{Z}\x{1c}-\x{1f}\x{85}", "w": r"\p{L}\p{N}_"}
    out: list[str] = []
    i, in_class = 0, False
    while i < len(expr):
        ch = expr[i]
        if ch == "\\" and i + 1 < len(expr):
            body = classes.get(expr[i + 1])
            if body is None:
                out.append(expr[i : i + 2])
            else:
                out.append(body if in_class else "[" + body + "]")
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            if expr.startswith("[^]", i) or expr.startswith("[]", i):
                out.append(expr[i + 1 : expr.index("]", i) + 1])
                i = expr.index("]", i) + 1
                continue
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# -- backends ----------------------------------------------------------------------------
class _Hyperscan:
    def __init__(self, entries: Sequence[_Entry]) -> None:
        import hyperscan

        self._hs = hyperscan
        exprs = tuple(prefilter(e.pattern.regex).encode() for e in entries)
        cached = _HS_CACHE.get(exprs)
        if cached is None:
            cached = _HS_CACHE[exprs] = self._compile(exprs)
        self.db, self.gate_only = cached

    def _compile(self, exprs: tuple[bytes, ...]) -> tuple[Any, frozenset[int]]:
        hs = self._hs
        base = hs.HS_FLAG_UTF8 | hs.HS_FLAG_UCP
        flags = []
        gate_only = set()
        for idx, expr in enumerate(exprs):
            try:  # probe alone: a pattern may be too large even without start-of-match
                hs.Database().compile(expressions=[expr], ids=[idx], elements=1, flags=[base])
                flags.append(base)
            except hs.error:
                flags.append(base | hs.HS_FLAG_PREFILTER)
                gate_only.add(idx)
        db = hs.Database()
        db.compile(
            expressions=list(exprs), ids=list(range(len(exprs))), elements=len(exprs), flags=flags
        )
        return db, frozenset(gate_only)

    def windows(self, texts: Sequence[str], entries: Sequence[_Entry]) -> list[dict[int, Window]]:
        encoded = [t.encode() for t in texts]
        starts = []
        pos = 0
        for data in encoded:
            starts.append(pos)
            pos += len(data) + len(SEPARATOR)
        hits: list[tuple[int, int]] = []
        add = hits.append

        def on_match(idx: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            add((idx, end))

        self.db.scan(SEPARATOR.encode().join(encoded), match_event_handler=on_match)
        ends: list[dict[int, list[int]]] = [{} for _ in texts]
        for idx, end in hits:
            k = bisect_right(starts, end) - 1
            found = ends[k].get(idx)
            local = end - starts[k]
            if found is None:
                ends[k][idx] = [local, local]
            elif local < found[0]:
                found[0] = local
            elif local > found[1]:
                found[1] = local
        out: list[dict[int, Window]] = []
        for k, per_text in enumerate(ends):
            text = texts[k]
            n = len(text)
            ascii_text = len(encoded[k]) == n
            windows: dict[int, Window] = {}
            for idx, (first, last) in per_text.items():
                if idx in self.gate_only:
                    windows[idx] = (0, n, n)
                    continue
                lo, hi = first, last
                if not ascii_text:  # byte offsets -> character offsets
                    lo = len(encoded[k][:first].decode())
                    hi = len(encoded[k][:last].decode())
                e = entries[idx]
                windows[idx] = (max(0, lo - e.width), hi, min(n, hi + e.reach))
            out.append(windows)
        return out


class _Re2:
    def __init__(self, entries: Sequence[_Entry]) -> None:
        import re2

        options = re2.Options()
        options.max_mem = 512 << 20
        self.set = re2.Set.SearchSet(options)
        for e in entries:
            self.set.Add(_re2_syntax(prefilter(e.pattern.regex)))
        self.set.Compile()

    def windows(self, texts: Sequence[str], entries: Sequence[_Entry]) -> list[dict[int, Window]]:
        out: list[dict[int, Window]] = []
        match = self.set.Match
        for text in texts:
            n = len(text)
            out.append(dict.fromkeys(match(text) or (), (0, n, n)))
        return out


class _Re:
    def __init__(self, entries: Sequence[_Entry]) -> None:
        self.gate = re.compile("|".join(f"(?:{e.pattern.regex})" for e in entries) or "(?!)")

    def windows(self, texts: Sequence[str], entries: Sequence[_Entry]) -> list[dict[int, Window]]:
        out: list[dict[int, Window]] = []
        search = self.gate.search
        for text in texts:
            m = search(text)
            if m is None:
                out.append({})
                continue
            n, first = len(text), m.start()  # no pattern matches before `first`
            out.append(
                {
                    idx: (first, n, n)
                    for idx, e in enumerate(entries)
                    if not e.literal or e.literal in text
                }
            )
        return out


def _available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


class Engine:
    def __init__(self, recognizers: Sequence[Recognizer], backend: Backend = "auto") -> None:
        self.recognizers = list(recognizers)
        self.entries = [
            _Entry(
                r,
                p,
                re.compile(p.regex),
                _max_width(p.regex),
                _max_width(strip_lookarounds(p.regex, keep_lookahead=True)),
                _literal_prefix(p.regex),
            )
            for r in self.recognizers
            for p in r.patterns
        ]
        self.backend = self._pick(backend)
        matcher: _Hyperscan | _Re2 | _Re | None = None
        if self.entries:
            if self.backend == "hyperscan":
                matcher = _Hyperscan(self.entries)
            elif self.backend == "re2":
                matcher = _Re2(self.entries)
            else:
                matcher = _Re(self.entries)
        self._windows: Callable[[Sequence[str], Sequence[_Entry]], list[dict[int, Window]]] = (
            matcher.windows if matcher is not None else _nothing
        )

    @staticmethod
    def _pick(backend: Backend) -> Literal["hyperscan", "re2", "re"]:
        if backend == "auto":  # by measurement (bench.dlp_engine): re2 > hyperscan > re
            for name in ("re2", "hyperscan"):
                if _available(name):
                    return name
            return "re"
        if backend not in ("hyperscan", "re2", "re"):
            raise ValueError(f"unknown backend {backend!r}; known: auto, hyperscan, re2, re")
        if backend != "re":
            importlib.import_module(backend)  # ImportError when not installed
        return backend

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
        if not any(texts):
            return [[] for _ in texts]
        windows = self._windows(texts, self.entries)
        return [
            self._confirm(text, fields[k] if fields is not None else None, windows[k], min_score)
            if windows[k]
            else []
            for k, text in enumerate(texts)
        ]

    def _confirm(
        self, text: str, field: str | None, windows: dict[int, Window], min_score: float
    ) -> list[Finding]:
        entries = self.entries
        findings: list[Finding] = []
        field_ctx: dict[int, bool] = {}
        seen: dict[int, set[tuple[int, int]]] = {}
        for idx in sorted(windows):  # recognizer order, then pattern order
            pos, last_start, endpos = windows[idx]
            entry = entries[idx]
            recognizer = entry.recognizer
            rid = id(recognizer)
            spans = seen.setdefault(rid, set())
            for m in entry.compiled.finditer(text, pos, endpos):
                start, end = m.span()
                if start > last_start:
                    break
                if start == end or (start, end) in spans:
                    continue
                ctx = field_ctx.get(rid)
                if ctx is None:
                    ctx = field_ctx[rid] = recognizer.field_is_context(field)
                f = evaluate(recognizer, entry.pattern, text, start, end, field_ctx=ctx)
                if f is not None and f.score >= min_score:
                    spans.add((start, end))
                    findings.append(f)
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
        declared = declared or {}
        wanted = set(fields) if fields is not None else None
        out: list[FieldFinding] = []
        paths: list[str] = []
        texts: list[str] = []
        for path, value in walk_strings(record):
            if wanted is not None and path not in wanted:
                continue
            entity = declared.get(path)
            if entity is not None:
                out.append(
                    FieldFinding(
                        path,
                        Finding(entity, 0, len(value), 1.0, "schema", "declared", None, True),
                    )
                )
                continue
            paths.append(path)
            texts.append(value)
        if texts:
            found = self.scan_texts(texts, paths, min_score=min_score)
            for path, findings in zip(paths, found, strict=True):
                out.extend(FieldFinding(path, f) for f in findings)
        return out


def _nothing(texts: Sequence[str], _entries: Sequence[_Entry]) -> list[dict[int, Window]]:
    return [{} for _ in texts]


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Resolve overlaps: keep the strongest finding (score, then validated, then longer
    span) and drop any finding that overlaps one already kept."""
    if len(findings) < 2:
        return sorted(findings, key=lambda f: f.start)
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


def _byte_to_char(text: str) -> dict[int, int]:
    out: dict[int, int] = {}
    pos = 0
    for i, ch in enumerate(text):
        out[pos] = i
        pos += len(ch.encode())
    out[pos] = len(text)
    return out
