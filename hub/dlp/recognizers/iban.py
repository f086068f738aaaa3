"""IBAN_CODE: International Bank Account Numbers, confirmed by ISO 7064 mod-97 and the
country's registered length and BBAN structure (python-stdnum's ``iban`` module).

The candidate regex is generated from the per-country length table below: for each length,
the country codes that use it, two check digits, and exactly the remaining characters —
either unbroken or in the printed groups of four separated by single spaces. Knowing the
length in the pattern means a trailing word ("… 7034 EUR") is never swallowed into the
candidate. Upper case only, as IBANs are printed.

``validate`` checks mod-97 and the registry's BBAN structure (letters vs digits per
position), but not the national account checksums stdnum knows for BE, ES, ME and NO: a
value that passes mod-97 in the right layout is an IBAN for DLP purposes even if its inner
account number is mistyped (or synthetic).
"""

from __future__ import annotations

from collections import defaultdict

from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError

from hub.dlp.base import Pattern, Recognizer

# ISO 13616 registry (SWIFT IBAN registry): country -> total IBAN length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def _body(rest: int) -> str:
    """The BBAN after 'CCdd': `rest` characters unbroken, or grouped by four with spaces."""
    full, tail = divmod(rest, 4)
    spaced = rf"(?: [A-Z0-9]{{4}}){{{full}}}" + (rf" [A-Z0-9]{{{tail}}}" if tail else "")
    return rf"(?:[A-Z0-9]{{{rest}}}|{spaced})"


def _regex() -> str:
    by_length: dict[int, list[str]] = defaultdict(list)
    for country, length in sorted(IBAN_LENGTHS.items()):
        by_length[length].append(country)
    alternatives = [
        rf"(?:{'|'.join(countries)})\d{{2}}{_body(length - 4)}"
        for length, countries in sorted(by_length.items())
    ]
    return r"(?=[A-Z]{2}\d\d)(?<![\w\-])(?:" + "|".join(alternatives) + r")(?![\w\-])"


class IbanRecognizer(Recognizer):
    entity = "IBAN_CODE"
    name = "iban"
    patterns = (Pattern("iban", _regex(), 0.3),)
    context = ("iban", "bank", "account", "acct", "transfer", "wire", "sepa", "bic", "swift")
    field_names = ("iban", "ibancode", "ibannumber", "bankaccount", "bankaccountnumber")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        compact = candidate.replace(" ", "")
        if len(compact) != IBAN_LENGTHS.get(compact[:2]):
            return None
        try:
            stdnum_iban.validate(compact, check_country=False)
        except ValidationError:
            return None
        return self.validated_score
