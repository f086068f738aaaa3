"""UK NHS number: ten digits, usually written 3-3-4 with spaces or dashes, the last digit a
modulus-11 check digit over the first nine (weights 10 down to 2).

python-stdnum has no NHS module, so the mod-11 check is written here (a few lines).
Bare ten-digit runs (phone numbers, epoch seconds, order numbers) pass the check about one
time in eleven, so a bare run only scores 0.4 even when the check passes: context or a
field name lifts it over the usual 0.5 threshold. The spaced or dashed 3-3-4 form scores
1.0 when the check passes.

The 3-3-4 layout is also how North American phone numbers are written, and one valid phone
number in eleven passes the check. A candidate that is a valid North American number
(libphonenumber, calling code 1, as the phone recognizer reads it) is ambiguous: written
3-3-4 it scores 0.6, over the phone's
0.55 (alone, the stricter reading wins: an NHS number is health data), under the phone's
0.9 with phone context; and an NHS context word counts for it only when no phone context
word is nearer to it. So "call me at 719 442 8954" is a phone, "NHS number 667 552 0644"
an NHS number though "call me on …" comes before it in the same sentence.
"""

from __future__ import annotations

from typing import ClassVar

from hub.dlp.base import Pattern, Recognizer, context_distance, context_word, digits
from hub.dlp.phone_validity import is_valid
from hub.dlp.recognizers.phone import PhoneRecognizer

# A first digit not glued to other digits or words and not after a dialling code ("+44 ").
# Patterns lead with a consuming character class and check the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_FIRST = r"[0-9](?<![\w.+-][0-9])(?<!\+[0-9] [0-9])(?<!\+[0-9]{2} [0-9])(?<!\+[0-9]{3} [0-9])"
_RIGHT = r"(?![\w-]|[.,][0-9])"

_BARE_SCORE = 0.4
_AMBIGUOUS_SCORE = 0.6  # 3-3-4 digits that are a valid phone number too


def _also_a_phone(candidate: str) -> bool:
    """Whether the candidate (ten digits, 3-3-4 or bare) is a valid North American phone
    number. (Ten digits starting 6-9 are Indian mobile numbers too, but India does not
    write them 3-3-4.) libphonenumber tries the calling code's regions one by one, tens of
    thousands of instructions for a number none of them holds, so the plan's own rule goes
    first (area code and exchange start with 2-9), and validate and context_in, which ask
    in turn about the same candidate, share the answer (`_ASKED`)."""
    found = _ASKED.get(candidate)
    if found is None:
        number = digits(candidate)
        found = number[0] in _NANP_FIRST and number[3] in _NANP_FIRST and is_valid(candidate, "US")
        if len(_ASKED) >= _ASKED_SIZE:
            _ASKED.clear()
        _ASKED[candidate] = found
    return found


_NANP_FIRST = "23456789"
_ASKED: dict[str, bool] = {}
_ASKED_SIZE = 256


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
        if candidate.isdigit():
            return _BARE_SCORE
        return _AMBIGUOUS_SCORE if _also_a_phone(candidate) else 1.0

    @classmethod
    def context_in(cls, text: str, start: int, end: int) -> str | None:
        """The NHS context word, unless the candidate is a phone number too and a phone
        context word is nearer to it than any NHS one ("NHS 450 557 7104, call
        719 442 8954": the second number is the phone)."""
        word = context_word(cls.context, text, start, end)
        if word is None or not _also_a_phone(text[start:end]):
            return word
        phone = context_distance(PhoneRecognizer.context, text, start, end)
        if phone is None:
            return word
        own = context_distance(cls.context, text, start, end)
        return None if own is None or phone < own else word
