"""US_PASSPORT: US passport book numbers — nine digits (older books) or one letter and
eight digits (Next Generation passports, since 2021).

Neither shape has a checksum and both are everyday reference-number shapes, so the
recognizer is context-gated: without a passport word nearby (or a passport field name)
nothing is reported. ``validate`` only drops one digit repeated throughout.
"""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer

_START = r"(?=[A-Z\d])(?<![\w\-])"
_END = r"(?![\w\-])(?![.,/]\d)"


class UsPassportRecognizer(Recognizer):
    entity = "US_PASSPORT"
    name = "us_passport"
    patterns = (
        Pattern("passport_next_generation", _START + r"[A-Z]\d{8}" + _END, 0.4),
        Pattern("passport_digits", _START + r"\d{9}" + _END, 0.3),
    )
    context = ("passport", "passports", "passportno", "travel document")
    context_required = True
    field_names = ("passport", "passportnumber", "passportno", "passportid", "passportnum")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        tail = candidate[-8:]
        if tail == tail[0] * 8:
            return None
        return pattern.score
