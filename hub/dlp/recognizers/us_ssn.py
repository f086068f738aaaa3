"""US_SSN: US Social Security numbers, AAA-GG-SSSS.

Three shapes: dashed (strong on its own), spaced (needs a little context) and nine plain
digits (weak: only context lifts it over the usual 0.5 threshold, because any nine-digit
order number, routing number or phone number has that shape). ``validate`` applies the
SSA's structure rules: no area 000, 666 or 900-999, no group 00, no serial 0000, and none of
the numbers known to be invalid or published (advertising and sample numbers), nor one
digit repeated nine times. There is no checksum, so a structurally valid value keeps its
pattern's score.
"""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer, digits

_START = r"(?=\d)(?<![\w\-])(?<!\d[.,/ ])"
_END = r"(?![\w\-])(?![.,/ ]\d)"

# Published or sample numbers the SSA says were never issued to a person (or were voided).
_KNOWN_INVALID = frozenset({"123456789", "078051120", "219099999", "457555462"})


class UsSsnRecognizer(Recognizer):
    entity = "US_SSN"
    name = "us_ssn"
    patterns = (
        Pattern("ssn_dashed", _START + r"\d{3}-\d{2}-\d{4}" + _END, 0.6, ceiling=0.6),
        Pattern("ssn_spaced", _START + r"\d{3} \d{2} \d{4}" + _END, 0.4, ceiling=0.4),
        Pattern("ssn_plain", _START + r"\d{9}" + _END, 0.15, ceiling=0.15),
    )
    context = ("ssn", "ssns", "social security", "socsec")
    field_names = ("ssn", "socialsecurity", "socialsecuritynumber", "socialsecurityno", "ssnumber")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = digits(candidate)
        area, group, serial = number[:3], number[3:5], number[5:]
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            return None
        if number in _KNOWN_INVALID or number == number[0] * 9:
            return None
        return pattern.score
