"""FR NIR (numéro de sécurité sociale / INSEE): 13 characters (sex, year, month,
department — 2A/2B for Corsica — commune, order) and a two-digit mod-97 key, often written
"2 95 10 99 126 111 93". The key is verified with ``stdnum.fr.nir``; the month is checked
here as well (01-12, 20-42 and 50-99 are issued for unknown or provisional months)."""

from __future__ import annotations

from stdnum.fr import nir

from hub.dlp.base import Pattern, Recognizer

# Sex digit first, then the left boundary as a lookbehind over it (keeps the regex engine's
# fast skip to candidate characters), then the rest with optional single spaces.
_FIRST = r"[1-478](?<![\w.+-][1-478])(?<!\+[0-9] .)(?<!\+[0-9]{2} .)(?<!\+[0-9]{3} .)"
_REST = r" ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}"


class FrNirRecognizer(Recognizer):
    entity = "FR_NIR"
    name = "fr_nir"
    patterns = (Pattern("nir", _FIRST + _REST + r"(?![\w-]|[.,][0-9])", 0.3),)
    context = (
        "nir",
        "insee",
        "securite sociale",
        "sécurité sociale",
        "secu",
        "sécu",
        "numero de securite",
        "social security",
        "carte vitale",
        "vitale",
    )
    field_names = ("nir", "numerosecu", "securitesociale", "numsecu", "insee", "numeroinsee")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        compact = candidate.replace(" ", "").upper()
        month = int(compact[3:5])
        if not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
            return None
        return self.validated_score if nir.is_valid(compact) else None
