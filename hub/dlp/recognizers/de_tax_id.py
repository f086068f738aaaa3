"""DE tax id (Steuerliche Identifikationsnummer, IdNr): eleven digits, no leading zero,
exactly one digit repeated two or three times among the first ten, and an ISO 7064
mod 11,10 check digit — all verified with ``stdnum.de.idnr``.

A random eleven-digit run passes that structure and check well under one time in a
hundred, so a passed check scores 0.85 (``validated_score``) and a context word or a tax
field lifts it to 1.0."""

from __future__ import annotations

from typing import ClassVar

from stdnum.de import idnr

from hub.dlp.base import Pattern, Recognizer

# A first digit not glued to other digits or words and not after a dialling code ("+44 ").
# Patterns lead with a consuming character class and check the left boundary with a
# lookbehind over it, so the regex engine can skip ahead to candidate characters.
_FIRST = r"[0-9](?<![\w.+-][0-9])(?<!\+[0-9] [0-9])(?<!\+[0-9]{2} [0-9])(?<!\+[0-9]{3} [0-9])"
_RIGHT = r"(?![\w-]|[.,][0-9])"


class DeTaxIdRecognizer(Recognizer):
    entity = "DE_TAX_ID"
    name = "de_tax_id"
    patterns = (
        # One pattern for both layouts (12 345 678 901 and bare), so the text is scanned once.
        Pattern("idnr", _FIRST + r"[0-9](?: [0-9]{3} [0-9]{3} [0-9]{3}|[0-9]{9})" + _RIGHT, 0.1),
    )
    context = (
        "idnr",
        "steuerid",
        "steuer id",
        "steuer idnr",
        "identifikationsnummer",
        "steueridentifikationsnummer",
        "steuer",
        "steuerliche",
        "tin",
        "tax id",
        "steuernummer",
    )
    field_names = (
        "taxid",
        "steuerid",
        "idnr",
        "steueridentifikationsnummer",
        "identifikationsnummer",
    )
    validated_score: ClassVar[float] = 0.85

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        return self.validated_score if idnr.is_valid(candidate) else None
