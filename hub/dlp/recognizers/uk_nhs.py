"""UK NHS number: ten digits, usually written 3-3-4 with spaces or dashes, the last digit a
modulus-11 check digit over the first nine (weights 10 down to 2).

python-stdnum has no NHS module, so the mod-11 check is written here (a few lines).
Bare ten-digit runs (phone numbers, epoch seconds, order numbers) pass the check about one
time in eleven, so a bare run only scores 0.4 even when the check passes: context or a
field name lifts it over the usual 0.5 threshold. The spaced or dashed 3-3-4 form scores
1.0 when the check passes.

The 3-3-4 layout is also how North American phone numbers are written, and one valid one
in eleven passes the check. Such a number is taken for a phone (`rescore` lowers it to the
bare score, so the phone recognizer's finding wins) when the phone recognizer reports the
same span and the field is a phone field, or a phone context word is nearer to it than
any NHS one (a word before the
value nearer than any after it: "NHS no: 450 557 7104, tel: …" keeps the NHS number). So
"call me at 719 442 8954" is a phone, "NHS number 667 552 0644" an NHS number though "call
me on …" comes earlier in the sentence. With no context at all, the stricter reading wins,
as before: an NHS number is health data, and either way the value is protected.
"""

from __future__ import annotations

import re
from typing import ClassVar

from hub.dlp.base import Pattern, Recognizer, context_nearness, digits
from hub.dlp.phone_validity import is_valid
from hub.dlp.recognizers.phone import PhoneRecognizer

# A first digit not glued to other digits or words and not after a dialling code ("+44 ").
# Patterns lead with a consuming character class and check the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_FIRST = r"[0-9](?<![\w.+-][0-9])(?<!\+[0-9] [0-9])(?<!\+[0-9]{2} [0-9])(?<!\+[0-9]{3} [0-9])"
_RIGHT = r"(?![\w-]|[.,][0-9])"

_BARE_SCORE = 0.4
_FIELD = "field name"  # the context word of a field whose name is context (hub.dlp.engine)
_PHONE = re.compile(PhoneRecognizer.patterns[0].regex)
_NANP_FIRST = "23456789"


def _dials(text: str, start: int, end: int) -> bool:
    """Whether the ten digits of text[start:end] can be a North American number: area code
    and exchange start with 2-9 (a digit test before any regex)."""
    number = digits(text[start:end])
    return number[0] in _NANP_FIRST and number[3] in _NANP_FIRST


def _phone_too(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is, as the phone recognizer reads it, a valid North American
    phone number: its pattern matches exactly there, and libphonenumber holds it valid in
    calling code 1. (Ten digits starting 6-9 are Indian mobile numbers too, but India does
    not write them 3-3-4.)"""
    found = _PHONE.match(text, start)
    return found is not None and found.end() == end and is_valid(found.group(), "US")


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
    rescore_needs: ClassVar[frozenset[str]] = frozenset({"PHONE_NUMBER"})

    def ceiling(self, candidate: str, pattern: Pattern) -> float:
        return _BARE_SCORE if candidate.isdigit() else 1.0

    def rescore(
        self, text: str, start: int, end: int, score: float, word: str | None, field: str | None
    ) -> float:
        """The bare score for a number the phone recognizer reports too, where a phone
        reading is nearer than any NHS one: a phone field with no NHS word in the text, or
        a phone context word nearer to the number than every NHS word
        (`context_nearness`). An NHS word beats the phone field itself ("NHS number 201
        555 7105" typed into a phone column is an NHS number), not a nearer phone word."""
        if word == _FIELD or score <= _BARE_SCORE or not _dials(text, start, end):
            return score
        # the context first: few NHS numbers have a phone word near, and the phone's
        # validity costs more (libphonenumber's type patterns)
        own = None if word is None else context_nearness(self.context, text, start, end)
        if own is not None or not PhoneRecognizer.field_is_context(field):
            phone = context_nearness(PhoneRecognizer.context, text, start, end)
            if phone is None or (own is not None and own <= phone):
                return score
        return _BARE_SCORE if _phone_too(text, start, end) else score

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = digits(candidate)
        if len(number) != 10 or len(set(number)) == 1:
            return None
        if nhs_check_digit(number[:9]) != int(number[9]):
            return None
        return _BARE_SCORE if candidate.isdigit() else 1.0
