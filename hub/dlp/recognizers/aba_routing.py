"""ABA_ROUTING_NUMBER: US bank routing transit numbers (RTN), nine digits, with the ABA
3-7-1 weighted checksum and a Federal Reserve prefix (00-12 banks, 21-32 thrifts, 61-72
electronic, 80 traveller's cheques). Written plain or as MICR-style 4-4-1 with dashes.

The checksum is one decimal digit: a random nine-digit number with a valid prefix passes it
one time in ten. So a confirmed checksum is worth 0.4 here (``validated_score``), not 1.0 —
below the usual 0.5 threshold until a routing word or field lifts it. This is what keeps
order numbers and SSN-shaped values from being reported as routing numbers.
"""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer, digits

_START = r"(?=\d)(?<![\w\-])(?<!\d[.,/])"
_END = r"(?![\w\-])(?![.,/]\d)"
_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)
_CONFIRMED = 0.4  # the score of a passed checksum (see above)


def aba_checksum_ok(number: str) -> bool:
    return sum(w * (ord(ch) - 48) for w, ch in zip(_WEIGHTS, number, strict=True)) % 10 == 0


def aba_prefix_ok(number: str) -> bool:
    prefix = int(number[:2])
    return prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80


class AbaRoutingRecognizer(Recognizer):
    entity = "ABA_ROUTING_NUMBER"
    name = "aba_routing"
    patterns = (
        Pattern("aba_digits", _START + r"[0-36-8]\d{8}" + _END, 0.05, ceiling=_CONFIRMED),
        Pattern("aba_dashed", _START + r"[0-36-8]\d{3}-\d{4}-\d" + _END, 0.05, ceiling=_CONFIRMED),
    )
    context = ("routing", "aba", "rtn", "transit", "abartn", "wire", "ach")
    field_names = (
        "routing",
        "routingnumber",
        "routingno",
        "aba",
        "abanumber",
        "abarouting",
        "abaroutingnumber",
        "rtn",
        "transitnumber",
    )
    validated_score = _CONFIRMED

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = digits(candidate)
        if number == number[0] * 9 or not aba_prefix_ok(number) or not aba_checksum_ok(number):
            return None
        return self.validated_score
