"""Date of birth. A date alone is not personal data worth flagging (invoices, meetings,
timestamps are full of them), so this recognizer is context-gated: it reports a date only
with a birth word nearby ("DOB", "date of birth", "born", "geboren", "fecha de
nacimiento", "né le", …) or in a birth-date field.

Formats: ISO 1984-03-05 and 1984/03/05; numeric day and month with a four-digit year and
``/``, ``.`` or ``-`` (3/5/1984, 05.03.1984, 05-03-1984 — either order, as US and EU
writing differ); two-digit years with slashes (3/5/84); month names in English ("March 5,
1984", "5 Mar 1984", "5th of March 1984"). ``validate`` checks the calendar date and a
plausible birth year (1900 up to today); a date followed by a clock time is a timestamp and
is not matched.
"""

from __future__ import annotations

import datetime as dt

from hub.dlp.base import Pattern, Recognizer

# Each pattern leads with a consuming character (class) and checks the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_NOT_GLUED = r"(?<![\w./-].)"
# Not followed by more digits, by a time ("T14:22", " 14:22") or by another separator run.
_RIGHT = r"(?![\w:/-]|\.[0-9]| [0-9]{1,2}:[0-9])"
_YY = r"[0-9]{2}"
_YEAR = r"(?:19|20)" + _YY
_MM = r"(?:0[1-9]|1[0-2])"
_DD = r"(?:0[1-9]|[12][0-9]|3[01])"
_N12 = r"[0-9]{1,2}"
# After the first letter (any of a month's initials, either case); validate() rejects
# the pairings that are not months ("Jec").
_MONTH_REST = (
    r"(?:an(?:uary)?|eb(?:ruary)?|ar(?:ch)?|pr(?:il)?|ay|une?|uly?|ug(?:ust)?"
    r"|ep(?:t(?:ember)?)?|ct(?:ober)?|ov(?:ember)?|ec(?:ember)?)"
)
_MONTH = r"[ADFJMNOSadfjmnos](?<![\w-].)" + _MONTH_REST
_ORD = r"(?:st|nd|rd|th)?"

# What may follow the first digit of a date that starts with a digit:
_ISO_REST = "[0-9]{3}(?:-" + _MM + "-" + _DD + "|/" + _MM + "/" + _DD + ")" + _RIGHT  # 1984-03-05
_NUMERIC_REST = (  # 3/5/1984, 3/5/84, 05.03.1984, 05-03-1984
    "[0-9]?(?:/" + _N12 + "/" + _YY + "(?:" + _YY + ")?"
    r"|\." + _N12 + r"\." + _YEAR + "|-" + _N12 + "-" + _YEAR + ")" + _RIGHT
)
_NAMED_REST = (  # 5 March 1984, 5th of March 1984, 5 Mar. 1984
    "[0-9]?" + _ORD + " (?:of )?" + _MONTH + r"\.?,? " + _YEAR + r"(?![\w-])"
)
_AFTER_FIRST_DIGIT = _ISO_REST + "|" + _NUMERIC_REST + "|" + _NAMED_REST
_MONTH_FIRST = _MONTH + r"\.? " + _N12 + _ORD + ",? " + _YEAR + r"(?![\w-])"  # March 5, 1984

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_EARLIEST_YEAR = 1900


def _plausible(year: int, month: int, day: int) -> bool:
    if year < _EARLIEST_YEAR:
        return False
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return False
    return born <= dt.datetime.now(tz=dt.UTC).date()


def _full_year(two_digits: int) -> int:
    this_year = dt.datetime.now(tz=dt.UTC).year
    year = 2000 + two_digits
    return year if year <= this_year else year - 100


class DateOfBirthRecognizer(Recognizer):
    entity = "DATE_OF_BIRTH"
    name = "date_of_birth"
    # Two patterns, one per leading character class, so each needs one pass over the text.
    patterns = (
        Pattern("digits first", "[0-9]" + _NOT_GLUED + "(?:" + _AFTER_FIRST_DIGIT + ")", 0.3),
        Pattern("month first", _MONTH_FIRST, 0.3),
    )
    context = (
        "dob",
        "date of birth",
        "birth date",
        "birthdate",
        "dateofbirth",
        "birthday",
        "born",
        "geboren",
        "geb",
        "geburtsdatum",
        "geburtstag",
        "geboortedatum",
        "fecha de nacimiento",
        "nacimiento",
        "nacido",
        "nacida",
        "date de naissance",
        "naissance",
        # The base tokenises context on ASCII letters, so French "né"/"née" can only be
        # matched as phrases (with the leading space, so "donné le" does not count).
        " né le",
        " née le",
        " né(e) le",
        "data di nascita",
        "nato il",
        "nata il",
    )
    context_required = True
    field_names = (
        "dob",
        "dateofbirth",
        "birthdate",
        "birthday",
        "geburtsdatum",
        "geboortedatum",
        "fechadenacimiento",
        "datedenaissance",
        "datadinascita",
    )

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if " " in candidate:
            ok = self._named(candidate)
        elif "." in candidate:  # d.m.yyyy is the only dotted order in use
            day, month, year = (int(p) for p in candidate.split("."))
            ok = _plausible(year, month, day)
        else:
            sep = "/" if "/" in candidate else "-"
            first, second, third = candidate.split(sep)
            if len(first) == 4:  # ISO
                ok = _plausible(int(first), int(second), int(third))
            else:
                year = int(third) if len(third) == 4 else _full_year(int(third))
                a, b = int(first), int(second)
                ok = _plausible(year, a, b) or _plausible(year, b, a)
        return pattern.score if ok else None

    @staticmethod
    def _named(candidate: str) -> bool:
        words = candidate.replace(",", " ").replace(".", " ").split()
        words = [w for w in words if w.lower() != "of"]
        year = int(words[-1])
        if words[0][0].isdigit():
            day_text, month_text = words[0], words[1]
        else:
            month_text, day_text = words[0], words[1]
        day = int(day_text.rstrip("stndrh"))
        month = _MONTHS.get(month_text.lower())
        return month is not None and _plausible(year, month, day)
