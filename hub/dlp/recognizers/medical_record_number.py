"""Medical record number (MRN), for HIPAA data. Every hospital numbers its records its own
way — mostly 6-12 digits, sometimes with a letter prefix — so there is no shape or check
digit to trust and the recognizer is context-gated: it reports only near "MRN", "medical
record", "patient id", "chart" (or in such a field).

``validate`` wants at least four digits and drops values that are plainly something else:
a date (20240305, 2024-03-05), or one digit repeated."""

from __future__ import annotations

import datetime as dt

from hub.dlp.base import Pattern, Recognizer

_MIN_DIGITS = 4
_MAX_LENGTH = 12


def _is_date(year: str, month: str, day: str) -> bool:
    if len(year) != 4 or year[:2] not in ("19", "20"):
        return False
    try:
        dt.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _looks_like_date(candidate: str) -> bool:
    """20240305, 2024-03-05 or 03-05-2024 / 05-03-2024."""
    if candidate.isdigit():
        return len(candidate) == 8 and _is_date(candidate[:4], candidate[4:6], candidate[6:])
    parts = candidate.split("-")
    if len(parts) != 3:
        return False
    first, second, third = parts
    return (
        _is_date(first, second, third)
        or _is_date(third, first, second)
        or _is_date(third, second, first)
    )


class MedicalRecordNumberRecognizer(Recognizer):
    entity = "MEDICAL_RECORD_NUMBER"
    name = "medical_record_number"
    patterns = (
        # 6-12 letters and digits, either digit-led or with a short letter prefix (A1234567,
        # MR0099812), or dashed digit groups (123-45-678). One pattern, led by a consuming
        # class with the left boundary as a lookbehind over it, so the text is scanned once
        # and the regex engine can skip ahead; validate() checks the length and digit count.
        Pattern(
            "mrn",
            r"[A-Za-z0-9](?<![\w./-].)"
            r"(?:(?<=[0-9])(?:[A-Za-z0-9]{5,11}|[0-9]{1,3}-[0-9]{2,4}-[0-9]{2,4})"
            r"|(?<=[A-Za-z])[A-Za-z]{0,2}[0-9][A-Za-z0-9]{3,10})"
            r"(?![\w-]|[./]\w)",
            0.3,
            # The same with the lookbehinds on the first character resolved (a digit, or a
            # letter), which a multi-pattern matcher cannot run: without them the first
            # alternative matches every word of 6-12 letters.
            prefilter=r"(?<![\w./-])(?:[0-9](?:[A-Za-z0-9]{5,11}|[0-9]{1,3}-[0-9]{2,4}-[0-9]{2,4})"
            r"|[A-Za-z][A-Za-z]{0,2}[0-9][A-Za-z0-9]{3,10})(?![\w-]|[./]\w)",
        ),
    )
    context = (
        "mrn",
        "medical record",
        "medical records",
        "medicalrecord",
        "medicalrecordnumber",
        "patient id",
        "patientid",
        "patient number",
        "patient no",
        "patient #",
        "chart",
        "chart number",
        "emr",
        "ehr",
        "hospital number",
    )
    context_required = True
    field_names = (
        "mrn",
        "medicalrecordnumber",
        "medicalrecord",
        "medicalrecordno",
        "patientid",
        "patientnumber",
        "chartnumber",
    )

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if "-" not in candidate and len(candidate) > _MAX_LENGTH:
            return None
        number = "".join(ch for ch in candidate if ch.isdigit())
        if len(number) < _MIN_DIGITS or len(set(number)) == 1:
            return None
        if _looks_like_date(candidate):
            return None
        return pattern.score
