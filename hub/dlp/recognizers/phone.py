"""PHONE_NUMBER: telephone numbers, confirmed with Google's libphonenumber metadata (the
``phonenumbers`` package): international ``+`` (and ``00``) forms for any country, and
national forms for US, GB, DE, FR, ES, IT, NL and IN.

The candidate regex finds runs of 7-17 digits joined by single separators (space, dot,
dash) and parentheses, optionally led by ``+`` or ``(``. Every step of its repetition
consumes exactly one digit, so it cannot backtrack badly; a trailing one-digit group
("… 2671 2 times") is not taken in.

``validate`` is the costly part and runs only on candidates. It first rejects shapes that are
something else — dates, ZIP+4, SSNs, dotted quads, decimals and dotted thousands, national
candidates over 13 digits (card numbers) — then asks libphonenumber. ISBNs need no rule: a
hyphenated ISBN ends in a one-digit group, which the pattern never ends on, and no 13-digit
978/979 number is valid in the regions tried. A national number must be written the way
people write it in that country: regions whose numbers start with a trunk ``0`` (GB, DE,
FR, NL, and IT/IN land lines) are tried only for candidates starting with 0, otherwise
libphonenumber accepts almost any digit string as, say, a German number. Scores: ``+``/``00``
international 0.7/0.6, formatted national 0.55, unbroken national digits 0.3 (needs
context — a bare ten-digit number is as often an order number; and only 9-12 digits with a
trunk 0, 9-11 without).
"""

from __future__ import annotations

import re

import phonenumbers

from hub.dlp.base import Pattern, Recognizer, digits
from hub.dlp.latin1 import specialised
from hub.dlp.phone_validity import is_valid, is_valid_in

_STEP = r"(?:\d|[ .\-]\(?\d(?=\d|[ .\-]\(?\d|\)[ .\-]?\d)|\)[ .\-]?\d)"
_END = r"(?![\w+]|[.\-,/:]\d)"
# Led by a consuming class, the left boundary a lookbehind over it and the optional "+" or
# "(" resolved behind it, so the regex engine skips ahead to the characters a number can
# start with: a pattern led by a lookaround is tried at every position of its window (the
# phone pattern's windows are a quarter of the bench corpus's text).
_REGEX = r"[+(\d](?<![\w+\-.,/:#@$%].)(?:(?<=\d)|(?<=[+(])\d)" + _STEP + "{6,16}" + _END
# The same with the left boundary in front, which a multi-pattern matcher can run.
_PREFILTER = r"(?<![\w+\-.,/:#@$%])(?:\+|\()?\d" + _STEP + "{6,16}" + _END

_INTERNATIONAL, _IDD, _FORMATTED, _UNBROKEN = 0.7, 0.6, 0.55, 0.3  # scores by shape
_TRUNK_ZERO_REGIONS = ("GB", "DE", "FR", "NL", "IT", "IN")
_OTHER_REGIONS = ("US", "ES", "IT", "IN")


def _digit_counts(region: str) -> frozenset[int]:
    """Digit counts a national number of `region` can have as written: its national
    significant lengths, plus one for a national (trunk) prefix. A cheap filter before
    parsing, which costs tens of microseconds per region."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return frozenset(range(4, 17))
    lengths = metadata.general_desc.possible_length
    return frozenset(lengths) | frozenset(n + 1 for n in lengths)


_DIGIT_COUNTS = {r: _digit_counts(r) for r in {*_TRUNK_ZERO_REGIONS, *_OTHER_REGIONS}}


def _regions_by_count(regions: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """Digit count -> the regions (in order) whose national numbers can have that many."""
    return {
        n: tuple(r for r in regions if n in _DIGIT_COUNTS[r])
        for n in range(1, 18)
        if any(n in _DIGIT_COUNTS[r] for r in regions)
    }


_TRUNK_ZERO_BY_COUNT = _regions_by_count(_TRUNK_ZERO_REGIONS)
_OTHER_BY_COUNT = _regions_by_count(_OTHER_REGIONS)

_NOT_A_PHONE_REGEX = (
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}"  # 2024-03-05
    r"|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}"  # 05.03.2024, 3/5/24
    r"|\d{5}-\d{4}"  # ZIP+4
    r"|\d{3}-\d{2}-\d{4}"  # SSN layout
    r"|\d{1,3}(?:\.\d{1,3}){3}"  # dotted quad (IPv4, versions)
    r"|\d{1,3}(?:\.\d{3})+"  # 1.234.567 (dotted thousands)
    r"|\d+\.\d+"  # decimal
)
_NOT_A_PHONE = re.compile(_NOT_A_PHONE_REGEX)
_NOT_A_PHONE_ASCII = specialised(_NOT_A_PHONE_REGEX)  # the same on ASCII candidates


def _not_a_phone(candidate: str) -> bool:
    """Whether the candidate has one of `_NOT_A_PHONE`'s shapes. Each is digits joined by
    ``-``, ``.`` or ``/`` and nothing else, so a candidate with a space or a parenthesis,
    or with none of those three, needs no regex. An ASCII candidate takes the pattern
    specialised to Latin-1 (`hub.dlp.latin1`): ~4,300 -> ~2,800 instructions a fullmatch
    (callgrind), which was half of the validator's own time on the bench corpus."""
    if " " in candidate or "(" in candidate:
        return False
    if "-" not in candidate and "." not in candidate and "/" not in candidate:
        return False
    if candidate.isascii():
        return _NOT_A_PHONE_ASCII.fullmatch(candidate) is not None
    return _NOT_A_PHONE.fullmatch(candidate) is not None


def _valid(candidate: str, region: str | None) -> bool:
    """libphonenumber's ``is_valid_number(parse(candidate, region))``."""
    return is_valid(candidate, region)


class PhoneRecognizer(Recognizer):
    entity = "PHONE_NUMBER"
    name = "phone"
    patterns = (Pattern("phone", _REGEX, 0.3, ceiling=_INTERNATIONAL, prefilter=_PREFILTER),)
    context = (
        "phone",
        "phones",
        "tel",
        "telephone",
        "mobile",
        "cell",
        "cellphone",
        "call",
        "called",
        "fax",
        "sms",
        "text",
        "whatsapp",
        "contact",
        "landline",
        "ext",
    )
    # No bare "tel": field matching is by suffix, and "hotel" ends with it.
    field_names = (
        "phone",
        "phonenumber",
        "phoneno",
        "telephone",
        "telno",
        "telnumber",
        "mobile",
        "mobilenumber",
        "cell",
        "cellnumber",
        "fax",
        "faxnumber",
        "msisdn",
    )

    def ceiling(self, candidate: str, pattern: Pattern) -> float:
        """Unbroken national digits score at most 0.3 (they need context); ``+``, ``00``
        and formatted numbers up to 0.7."""
        if candidate.isdigit() and not candidate.startswith("00"):
            return _UNBROKEN
        return _INTERNATIONAL

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        international = candidate[0] == "+"
        if not international and _not_a_phone(candidate):
            return None
        number = digits(candidate)
        n = len(number)
        if n > 15 or number == number[0] * n:
            return None
        if international:
            return _INTERNATIONAL if n >= 8 and _valid(candidate, None) else None
        if number.startswith("00"):
            # International call prefix used across Europe; GB's metadata knows it.
            return _IDD if n >= 10 and _valid(candidate, "GB") else None
        trunk_zero = number[0] == "0"
        if n > 13 or (candidate.isdigit() and not 9 <= n <= (12 if trunk_zero else 11)):
            return None
        # The regions tried: those whose numbers can have n digits (_DIGIT_COUNTS).
        regions = (_TRUNK_ZERO_BY_COUNT if trunk_zero else _OTHER_BY_COUNT).get(n)
        if regions is None or not is_valid_in(candidate, regions):
            return None
        return _UNBROKEN if candidate.isdigit() else _FORMATTED
