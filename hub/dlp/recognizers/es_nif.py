"""ES NIF for people: the DNI (eight digits and a check letter) and the NIE (X, Y or Z,
seven digits and a check letter), plus the K/L/M variants that use the DNI letter. The
check letter is verified with ``stdnum.es.nif``; company CIFs are out of scope."""

from __future__ import annotations

from stdnum.es import nif

from hub.dlp.base import Pattern, Recognizer

# Patterns lead with a consuming class and check the left boundary with a lookbehind over
# it, so the regex engine can skip ahead to candidate characters.
_NOT_GLUED = r"(?<![\w-].)"
_RIGHT = r"(?![\w-])"
# The 23 check letters are the alphabet without I, O and U.
_CHECK = r"[A-HJ-NP-TV-Za-hj-np-tv-z]"


class EsNifRecognizer(Recognizer):
    entity = "ES_NIF"
    name = "es_nif"
    patterns = (
        Pattern("dni", "[0-9]" + _NOT_GLUED + "[0-9]{7}-?" + _CHECK + _RIGHT, 0.3),
        Pattern("nie", "[KLMXYZklmxyz]" + _NOT_GLUED + "-?[0-9]{7}-?" + _CHECK + _RIGHT, 0.4),
    )
    context = (
        "nif",
        "nie",
        "dni",
        "documento nacional de identidad",
        "identificacion fiscal",
        "identificación fiscal",
        "extranjero",
        "extranjeros",
    )
    field_names = ("nif", "nie", "dni", "numeroidentificacionfiscal")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        return self.validated_score if nif.is_valid(candidate) else None
