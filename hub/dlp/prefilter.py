"""Pattern analysis for the multi-pattern matchers: what a matcher runs in place of a
recognizer's exact Python pattern, and how far a match may reach.

A matcher never decides a finding; it only says where the exact pattern may match, so what
it runs must match a *superset* of the exact pattern (every real match also matches the
prefilter, ending at the same place or one character later).

- `prefilter` (string level, used by re2): lookarounds stripped, long bounded repeats
  widened. Simple, but a pattern like ``(?<![\\w-])\\d{8,17}(?![\\w-])`` then matches
  inside every digit run, at every end.
- `bounded_prefilter` (parse-tree level, used by hyperscan): the same, except that the
  pattern's own boundaries are kept by *consuming* the neighbouring character. A leading
  negative lookbehind over one character (also one placed after a fixed-width literal
  prefix, ``xox[ab]-(?<![A-Za-z0-9-].....)``) becomes ``[^…]`` before the match, and
  trailing negative lookaheads become ``[^…]`` after it (their one-character
  alternatives only: dropping the longer ones keeps a superset). A digit-run pattern
  then matches once per run instead of once per digit. The matcher's texts are joined
  with NUL, which no pattern matches and no boundary class excludes, so a text's first
  and last characters still have a neighbour to consume.

The matcher scans ASCII: every non-ASCII character of a text stands as `STAND_IN` (one
byte for one character, so offsets need no conversion). A class that matches a non-ASCII
character also matches the stand-in; a boundary class never excludes it (a superset
either way). Decimal digits other than 0-9 are the one thing a stand-in cannot carry
(``\\d`` stays ``[0-9]``): the matcher searches texts holding them with every pattern.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

_sre: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

WIDEN_FROM = 16  # bounded repeats {m,n} with n >= this become {m,} in prefilters
NUL = "\x00"  # what a matcher joins texts with: no pattern matches it
STAND_IN = "\x01"  # what a matcher scans in place of each non-ASCII character
_STAND_IN = "\\x{1}"

_LOOKAROUND = (_c.ASSERT, _c.ASSERT_NOT)
_SINGLE = (_c.LITERAL, _c.IN)
# In a class that excludes (a boundary), the ASCII part of \d, \w and \s excludes less
# than Python's Unicode class: still a superset. In a class that matches, \d becomes [0-9]
# (see above) and Python's whitespace is its ASCII part and the stand-in; \w is not
# translated.
_EXCLUDED_CATEGORY = {
    _c.CATEGORY_DIGIT: "0-9",
    _c.CATEGORY_WORD: "A-Za-z0-9_",
    _c.CATEGORY_SPACE: r"\s",
}
_MATCHED_CATEGORY = {
    _c.CATEGORY_DIGIT: "0-9",
    _c.CATEGORY_SPACE: "".join(f"\\x{{{c:x}}}" for c in range(128) if chr(c).isspace()) + _STAND_IN,
}


# -- string level ------------------------------------------------------------------------
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
        lambda m: m.group(0) if int(m.group(2)) < WIDEN_FROM else "{" + m.group(1) + ",}",
        strip_lookarounds(regex),
    )


def max_width(regex: str) -> int:
    return int(_sre.parse(regex).getwidth()[1])


def min_width(regex: str) -> int:
    return int(_sre.parse(regex).getwidth()[0])


def reach(regex: str) -> int:
    """How far right of a match's start the regex may look: the longest match, or further
    where a lookahead looks past it."""
    return _reach(list(_sre.parse(regex).data))[1]


def _reach(items: list[Any]) -> tuple[int, int]:
    """(longest advance, furthest look) from the start of `items`."""
    advance = look = 0
    for op, av in items:
        if op in _LOOKAROUND:
            direction, body = av
            if direction == 1:
                body_advance, body_look = _reach(list(body.data))
                look = max(look, advance + max(body_advance, body_look))
            continue
        if op is _c.BRANCH:
            parts = [_reach(list(b.data)) for b in av[1]]
            look = max(look, advance + max(p[1] for p in parts))
            advance += max(p[0] for p in parts)
        elif op is _c.SUBPATTERN:
            sub_advance, sub_look = _reach(list(av[3].data))
            look = max(look, advance + sub_look)
            advance += sub_advance
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            _, hi, sub = av
            sub_advance, sub_look = _reach(list(sub.data))
            if hi is _c.MAXREPEAT:
                return int(_c.MAXREPEAT), int(_c.MAXREPEAT)
            if hi:
                look = max(look, advance + (hi - 1) * sub_advance + sub_look)
            advance += hi * sub_advance
        else:
            advance += _width([(op, av)])[1]
        look = max(look, advance)
    return advance, look


def literal_prefix(regex: str) -> str:
    literal = _c.LITERAL
    out = []
    for op, arg in _sre.parse(strip_lookarounds(regex)):
        if op is not literal:
            break
        out.append(chr(arg))
    return "".join(out)


def re2_syntax(expr: str) -> str:
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


# -- parse-tree level (hyperscan) ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Bounded:
    """A hyperscan expression for one pattern. ``lead``/``trail``: it consumes one
    character before / after the real match (so a reported end is at most one character
    past the real one)."""

    expression: str
    lead: bool
    trail: bool


class UnsupportedPattern(ValueError):
    """The parse tree holds something the hyperscan translation does not handle."""


def bounded_prefilter(regex: str) -> Bounded:
    data = list(_sre.parse(regex).data)
    lead = _leading_exclusions(data)
    trail = _trailing_exclusions(data)
    body = _emit(data)
    head = "[^" + "".join(lead) + "]" if lead else ""
    tail = "[^" + "".join(trail) + "]" if trail else ""
    return Bounded(head + body + tail, bool(head), bool(tail))


def _width(items: list[Any]) -> tuple[int, int]:
    lo, hi = _sre.SubPattern(_sre.State(), items).getwidth()
    return int(lo), int(hi)


def _leading_exclusions(data: list[Any]) -> list[str]:
    """Class members of the characters a match may not follow, from negative lookbehinds
    before the first variable-width item."""
    members: list[str] = []
    consumed: list[Any] = []
    for op, av in data:
        if op in _LOOKAROUND:
            direction, body = av
            if op is _c.ASSERT_NOT and direction == -1:
                members.extend(_before(list(body.data), consumed))
            continue
        lo, hi = _width([(op, av)])
        if lo != hi:
            break
        consumed.append((op, av))
    return members


def _before(body: list[Any], consumed: list[Any]) -> list[str]:
    """For ``(?<!X…)`` placed after `consumed`: X's members when the rest of the body
    certainly matches what was consumed (so the lookbehind only tests the character before
    the match), else nothing (the lookbehind is dropped, which keeps a superset)."""
    if not body or body[0][0] not in _SINGLE:
        return []
    first, rest = body[0], body[1:]
    if _width(rest) != _width(consumed) or _width(consumed)[0] != _width(consumed)[1]:
        return []
    covers = _emit(rest) == _emit(consumed) or (_only_any(rest) and _no_newline(consumed))
    if not covers:
        return []
    return _members(first)


def _trailing_exclusions(data: list[Any]) -> list[str]:
    """Class members of the characters a match may not precede, from the negative
    lookaheads at the end of the pattern (their one-character alternatives)."""
    members: list[str] = []
    for op, av in reversed(data):
        if op not in _LOOKAROUND:
            break
        direction, body = av
        if op is not _c.ASSERT_NOT or direction != 1:
            continue
        items = list(body.data)
        branches = [items]
        if len(items) == 1 and items[0][0] is _c.BRANCH:
            branches = [list(b.data) for b in items[0][1][1]]
        for branch in branches:
            if len(branch) == 1 and branch[0][0] in _SINGLE:
                members.extend(_members(branch[0]))
    return members


def _members(item: tuple[Any, Any]) -> list[str]:
    """A single-character item as members of a negated class, or nothing when it cannot be
    (negated sets) or when it holds NUL (a text's neighbour in the matcher's buffer)."""
    op, av = item
    if op is _c.LITERAL:
        return [] if av == 0 else [_char(av)] if av < _ASCII else []
    out = []
    for kind, arg in av:
        if kind is _c.NEGATE:
            return []
        if kind is _c.LITERAL:
            if arg == 0:
                return []
            if arg < _ASCII:  # a non-ASCII character is not excluded: its stand-in is not
                out.append(_char(arg))
        elif kind is _c.RANGE:
            if arg[0] == 0:
                return []
            if arg[0] < _ASCII:
                out.append(_char(arg[0]) + "-" + _char(min(arg[1], _ASCII - 1)))
        elif kind is _c.CATEGORY:
            if arg not in _EXCLUDED_CATEGORY:
                return []  # \D, \S, \W hold NUL
            out.append(_EXCLUDED_CATEGORY[arg])
        else:  # pragma: no cover - the parser produces nothing else in a class
            return []
    return out


def _only_any(items: list[Any]) -> bool:
    for op, av in items:
        if op is _c.ANY:
            continue
        if op is _c.MAX_REPEAT and av[0] == av[1] and _only_any(list(av[2].data)):
            continue
        return False
    return True


def _no_newline(items: list[Any]) -> bool:
    """Whether the items certainly never match a newline (positive classes only)."""
    for op, av in items:
        if op is _c.LITERAL:
            if av == ord("\n"):
                return False
        elif op is _c.IN:
            if not _members((op, av)) or any(
                k is _c.CATEGORY and a is _c.CATEGORY_SPACE for k, a in av
            ):
                return False
            if any(k is _c.RANGE and a[0] <= ord("\n") <= a[1] for k, a in av):
                return False
        elif op is _c.BRANCH:
            if not all(_no_newline(list(b.data)) for b in av[1]):
                return False
        elif op is _c.SUBPATTERN:
            if not _no_newline(list(av[3].data)):
                return False
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            if not _no_newline(list(av[2].data)):
                return False
        elif op not in _LOOKAROUND:
            return False
    return True


_ASCII = 128


def _char(code: int) -> str:
    """An ASCII character in hyperscan syntax."""
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    if 0x20 < code < 0x7F:
        return "\\" + ch
    return f"\\x{{{code:x}}}"


def _matched(code: int) -> str:
    """A character a pattern matches, as the matcher sees it."""
    return _char(code) if code < _ASCII else _STAND_IN


def _class(av: list[Any]) -> str:
    out = []
    negate = False
    for kind, arg in av:
        if kind is _c.NEGATE:
            negate = True
        elif kind is _c.LITERAL:
            out.append(_matched(arg))
        elif kind is _c.RANGE:
            lo, hi = arg
            if lo < _ASCII:
                out.append(_char(lo) + "-" + _char(min(hi, _ASCII - 1)))
            if hi >= _ASCII:
                out.append(_STAND_IN)
        elif kind is _c.CATEGORY and arg in _MATCHED_CATEGORY:
            out.append(_MATCHED_CATEGORY[arg])
        else:
            raise UnsupportedPattern(f"class item {kind} {arg}")
    if negate:
        raise UnsupportedPattern("negated class inside a pattern")
    return "[" + "".join(out) + "]"


def _emit(items: list[Any]) -> str:
    out = []
    for op, av in items:
        if op is _c.LITERAL:
            out.append(_matched(av))
        elif op is _c.ANY:
            out.append(".")
        elif op is _c.IN:
            out.append(_class(av))
        elif op is _c.BRANCH:
            out.append("(?:" + "|".join(_emit(list(b.data)) for b in av[1]) + ")")
        elif op is _c.SUBPATTERN:
            if av[1] or av[2]:
                raise UnsupportedPattern("inline flags")
            out.append("(?:" + _emit(list(av[3].data)) + ")")
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            body = _emit(list(sub.data))
            if len(sub.data) != 1 or sub.data[0][0] not in (_c.LITERAL, _c.IN, _c.ANY):
                body = "(?:" + body + ")"
            if hi is _c.MAXREPEAT or hi >= WIDEN_FROM:
                out.append(f"{body}{{{lo},}}")
            elif lo == hi:
                out.append(f"{body}{{{lo}}}")
            else:
                out.append(f"{body}{{{lo},{hi}}}")
        elif op in _LOOKAROUND:
            continue  # stripped: a superset
        else:
            raise UnsupportedPattern(f"{op}")
    return "".join(out)
