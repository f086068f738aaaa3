"""US driver licence numbers. Each state has its own shape and none carries a public check
digit, so the shapes are weak and the recognizer is context-gated: it reports nothing
without a word such as "driver", "licence" or "DMV" nearby (or a licence field).

Shapes covered: one letter and 7-9 or 11-14 digits (CA, IL, FL, MI, MN, MD, NJ, WI, …),
two letters and 5-7 digits (OH and others), Washington's ``WDL`` + 9 and its older
12-character form with ``*``, Florida's and Wisconsin's dashed print forms, and 7-9 or 12
digits (TX, PA, NY, NC, …)."""

from __future__ import annotations

import datetime as dt

from hub.dlp.base import Pattern, Recognizer

# Each pattern leads with a consuming class and checks the left boundary with a lookbehind
# over that first character, so the regex engine can skip ahead to candidate characters.
_NOT_GLUED = r"(?<![\w.*+/-].)"
_RIGHT = r"(?![\w*-]|[./]\w)"
_AFTER_LETTER = (
    "[0-9]{7,9}|[0-9]{11,14}"  # one letter and digits: CA, IL, FL, MI, MN, MD, NJ, WI, …
    "|[A-Z][0-9]{5,7}"  # two letters and digits: OH and others
    "|(?<=W)DL[A-Z0-9]{9}|[A-Z*]{6}[0-9]{3}[A-Z0-9]{2}"  # WA, new and old
    "|[0-9]{3}-(?:[0-9]{3}-[0-9]{2}-[0-9]{3}-[0-9]|[0-9]{4}-[0-9]{4}-[0-9]{2})"  # FL, WI print
)


def _is_yyyymmdd(number: str) -> bool:
    if len(number) != 8 or number[:2] not in ("19", "20"):
        return False
    try:
        dt.date(int(number[:4]), int(number[4:6]), int(number[6:]))
    except ValueError:
        return False
    return True


class UsDriverLicenseRecognizer(Recognizer):
    entity = "US_DRIVER_LICENSE"
    name = "us_driver_license"
    # One pattern per leading class (letter, digit), so the text is scanned twice, not five
    # times; the alternatives after the first letter are the state shapes.
    patterns = (
        Pattern("letter first", "[A-Z]" + _NOT_GLUED + "(?:" + _AFTER_LETTER + ")" + _RIGHT, 0.3),
        Pattern("digits", "[0-9]" + _NOT_GLUED + "(?:[0-9]{6,8}|[0-9]{11})" + _RIGHT, 0.15),
    )
    context = (
        "driver",
        "drivers",
        "driving",
        "licence",
        "license",
        "licences",
        "licenses",
        "lic",
        "dl",
        "dln",
        "cdl",
        "dmv",
        "driverlicense",
        "driverslicense",
        "driverlicence",
        "driverslicence",
    )
    context_required = True
    field_names = (
        "driverlicense",
        "driverslicense",
        "driverlicence",
        "driverslicence",
        "drivinglicence",
        "drivinglicense",
        "dl",
        "dlnumber",
        "dln",
        "licensenumber",
        "licencenumber",
    )

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = "".join(ch for ch in candidate if ch.isdigit())
        if number and len(set(number)) == 1:
            return None  # 00000000, 9999999: placeholders
        if pattern.name == "digits" and _is_yyyymmdd(number):
            return None  # a date written 20240305 near "license" (issued, expires)
        return pattern.score
