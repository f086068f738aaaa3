"""NL BSN (burgerservicenummer): nine digits with the "11-proof" checksum, checked with
``stdnum.nl.bsn``. The dotted form 1234.56.782 is distinctive and scores 1.0 when the
check passes; bare nine digits are everywhere (order numbers, amounts in cents), so a bare
run that passes the check scores 0.4 and needs a context word or a BSN field to be
reported at 0.5.
"""

from __future__ import annotations

from typing import ClassVar

from stdnum.nl import bsn

from hub.dlp.base import Pattern, Recognizer

# A first digit not glued to other digits or words and not after a dialling code ("+44 ").
# Patterns lead with a consuming character class and check the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_FIRST = r"[0-9](?<![\w.+-][0-9])(?<!\+[0-9] [0-9])(?<!\+[0-9]{2} [0-9])(?<!\+[0-9]{3} [0-9])"
_RIGHT = r"(?![\w-]|[.,][0-9])"

_BARE_SCORE = 0.4


class NlBsnRecognizer(Recognizer):
    entity = "NL_BSN"
    name = "nl_bsn"
    patterns = (
        # One pattern for both layouts (1234.56.782 and bare), so the text is scanned once.
        Pattern("bsn", _FIRST + r"[0-9]{3}(?:\.[0-9]{2}\.[0-9]{3}|[0-9]{5})" + _RIGHT, 0.05),
    )
    context = (
        "bsn",
        "burgerservicenummer",
        "burgerservice nummer",
        "sofinummer",
        "sofi",
        "citizen service number",
    )
    field_names = ("bsn", "burgerservicenummer", "sofinummer")
    validated_score: ClassVar[float] = _BARE_SCORE

    def ceiling(self, candidate: str, pattern: Pattern) -> float:
        return _BARE_SCORE if candidate.isdigit() else 1.0

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if candidate.startswith("0000") or not bsn.is_valid(candidate):
            return None
        return _BARE_SCORE if candidate.isdigit() else 1.0
