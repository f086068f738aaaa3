"""UK NHS number: ten digits, usually written 3-3-4 with spaces or dashes, the last digit a
modulus-11 check digit over the first nine (weights 10 down to 2).

python-stdnum has no NHS module, so the mod-11 check is written here (a few lines).
Bare ten-digit runs (phone numbers, epoch seconds, order numbers) pass the check about one
time in eleven, so a bare run only scores 0.4 even when the check passes: context or a
field name lifts it over the usual 0.5 threshold. The spaced or dashed 3-3-4 form scores
1.0 when the check passes.
"""

from __future__ import annotations

from typing import ClassVar

from hub.dlp.base import Pattern, Recognizer, digits

# A first digit not glued to other digits or words and not after a dialling code ("+44 ").
# Patterns lead with a consuming character class and check the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_FIRST = r"[0-9](?<![\w.+-][0-9])(?<!\+[0-9] [0-9])(?<!\+[0-9]{2} [0-9])(?<!\+[0-9]{3} [0-9])"
_RIGHT = r"(?![\w-]|[.,][0-9])"

_BARE_SCORE = 0.4


def nhs_check_digit(first_nine: str) -> int | None:
    """The NHS mod-11 check digit for nine digits, or None when the remainder makes the
    number unusable (check value 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


class UkNhsRecognizer(Recognizer):
    entity = "UK_NHS"
    name = "uk_nhs"
    patterns = (
        # One pattern for the three layouts (3-3-4 spaced, 3-3-4 dashed, bare), so the text
        # is scanned once; validate() tells them apart.
        Pattern(
            "nhs",
            _FIRST + r"[0-9]{2}(?: [0-9]{3} [0-9]{4}|-[0-9]{3}-[0-9]{4}|[0-9]{7})" + _RIGHT,
            0.05,
        ),
    )
    context = (
        "nhs",
        "nhsno",
        "nhsnumber",
        "nhs number",
        "national health service",
        "health service number",
        "chi",
    )
    field_names = ("nhsnumber", "nhsno", "nhs", "nhsid")
    # A passed check on a bare run is still a validated number, just an ambiguous one.
    validated_score: ClassVar[float] = _BARE_SCORE

    def ceiling(self, candidate: str, pattern: Pattern) -> float:
        return _BARE_SCORE if candidate.isdigit() else 1.0

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = digits(candidate)
        if len(number) != 10 or len(set(number)) == 1:
            return None
        if nhs_check_digit(number[:9]) != int(number[9]):
            return None
        return _BARE_SCORE if candidate.isdigit() else 1.0
