"""Regular expressions specialised to Latin-1 text: the same matches, found faster.

In a str pattern, Python's ``re`` tests ``\\d``, ``\\w``, ``\\s`` and their negations by asking
the Unicode database about each character (``_PyUnicode_IsDecimalDigit`` and friends, a
function call or two per character tested). On a text whose characters are all below
U+0100 the answers are fixed: `specialised` spells each such class out as the Latin-1
characters that Python's own class holds, and ``re`` compiles the class into a 256-bit
table. On such a text the specialised pattern matches exactly what the original does
(same matches, same groups: the class loses only members past U+00FF, which the text
cannot hold); on any other text it may not, so callers pick the pattern per text
(`is_latin1`). ``tests/unit/dlp/test_latin1.py`` holds every recognizer's pattern to this
on the corpus and on random Latin-1 text.

Over the bench corpus (callgrind), \\d alone cost some 2.2 M instructions a pass in the
Unicode database, and about as much again in the class tests that called it.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

_parser: Any = importlib.import_module("re._parser")
_compiler: Any = importlib.import_module("re._compiler")
_c: Any = importlib.import_module("re._constants")

LIMIT = 0x100  # Latin-1: the characters below U+0100
_ESCAPES = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
}
# Flags under which a class means something else (case folding, locale, ASCII classes).
_KEEP = re.IGNORECASE | re.LOCALE | re.ASCII
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
_PLAIN = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.AT, _c.GROUPREF)


def is_latin1(text: str) -> bool:
    """Whether every character of `text` is below U+0100 (a copy of a non-ASCII text: no
    exception, no per-character Python work)."""
    return text.isascii() or len(text.encode("latin-1", "ignore")) == len(text)


def specialised(regex: str) -> re.Pattern[str]:
    """`regex` compiled for Latin-1 text (see the module); compiled as it is when it has
    inline flags or anything else the rewrite does not know."""
    tree = _parser.parse(regex, 0)
    if tree.state.flags & _KEEP or not _rewrite(tree):
        return re.compile(regex)
    compiled: re.Pattern[str] = _compiler.compile(tree, 0)
    return compiled


@cache
def _members(category: Any) -> tuple[tuple[Any, Any], ...]:
    """The Latin-1 characters of a class escape as class items (ranges and single
    characters), as Python's ``re`` itself decides them."""
    test = re.compile(f"[{_ESCAPES[category]}]").fullmatch
    items: list[tuple[Any, Any]] = []
    first = -1
    for code in range(LIMIT + 1):
        inside = code < LIMIT and test(chr(code)) is not None
        if inside and first < 0:
            first = code
        elif not inside and first >= 0:
            last = code - 1
            items.append((_c.RANGE, (first, last)) if last > first else (_c.LITERAL, first))
            first = -1
    return tuple(items)


def _rewrite(pattern: Any) -> bool:
    """Spell out the class escapes of every class in a parsed pattern, in place; False
    when it holds something this does not know (the pattern is then compiled as it is)."""
    for i, (op, av) in enumerate(pattern.data):
        if op is _c.IN:
            items: list[tuple[Any, Any]] = []
            for kind, arg in av:
                if kind is _c.CATEGORY:
                    if arg not in _ESCAPES:
                        return False
                    items.extend(_members(arg))
                else:
                    items.append((kind, arg))
            pattern.data[i] = (op, items)
        elif op in _REPEATS:
            if not _rewrite(av[2]):
                return False
        elif op is _c.SUBPATTERN:
            if av[1] or av[2] or not _rewrite(av[3]):  # av[1], av[2]: inline flags
                return False
        elif op is _c.BRANCH:
            if not all(_rewrite(branch) for branch in av[1]):
                return False
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if not _rewrite(av[1]):
                return False
        elif op is _c.ATOMIC_GROUP:
            if not _rewrite(av):
                return False
        elif op not in _PLAIN:
            return False
    return True
