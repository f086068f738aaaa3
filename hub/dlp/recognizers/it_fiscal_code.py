"""IT codice fiscale for people: 16 characters with a fixed structure (surname and name
consonants, birth year, month letter, day with +40 for women, place code) and a check
letter, verified with ``stdnum.it.codicefiscale`` (which also checks the birth date)."""

from __future__ import annotations

from stdnum.it import codicefiscale

from hub.dlp.base import Pattern, Recognizer

_LETTER = "[A-Za-z]"
# Digits, or the letters that replace digits when two people would share a code.
_DIGIT = "[0-9LMNPQRSTUVlmnpqrstuv]"
_MONTH = "[ABCDEHLMPRSTabcdehlmprst]"
# The left boundary is a lookbehind over the first letter, so the regex engine can still skip
# ahead to candidate characters.
_CODE = (
    _LETTER
    + r"(?<![\w-].)"
    + _LETTER
    + "{5}"
    + _DIGIT
    + "{2}"
    + _MONTH
    + _DIGIT
    + "{2}"
    + _LETTER
    + _DIGIT
    + "{3}"
    + _LETTER
)


class ItFiscalCodeRecognizer(Recognizer):
    entity = "IT_FISCAL_CODE"
    name = "it_fiscal_code"
    patterns = (Pattern("codice fiscale", _CODE + r"(?![\w-])", 0.3),)
    context = ("codice fiscale", "cod fisc", "cf", "fiscale", "tessera sanitaria")
    field_names = ("codicefiscale", "cf", "codfisc", "fiscalcode")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        return self.validated_score if codicefiscale.is_valid(candidate) else None
