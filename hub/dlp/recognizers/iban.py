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
account number is mistyped (or synthetic). It gives ``stdnum.iban.validate(number,
check_country=False)``'s verdict, computed the quick way: mod-97 over one integer, and the
BBAN structure from stdnum's own IBAN registry, compiled once per country (stdnum looks it
up in its registry file on every call, ~30 µs).
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from functools import cache

from stdnum import numdb

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


def _prefilter() -> str:
    """Country letters, check digits, then at least the shortest BBAN's worth of upper-case
    letters, digits and spaces: a superset of `_regex` that a multi-pattern matcher runs
    several times faster (the per-country alternation makes a large automaton)."""
    shortest = min(IBAN_LENGTHS.values()) - 4
    return rf"(?=[A-Z]{{2}}\d\d)(?<![\w\-])[A-Z]{{2}}\d{{2}}[ A-Z0-9]{{{shortest},}}(?![\w\-])"


_IBAN_REGISTRY = numdb.get("iban")
_BASE36 = str.maketrans({ch: str(i) for i, ch in enumerate(string.ascii_uppercase, start=10)})
_STRUCTURE_PART = re.compile(r"([1-9][0-9]*)!([nac])")
_STRUCTURE_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


@cache
def bban_structure(country: str) -> re.Pattern[str] | None:
    """The BBAN layout stdnum's registry gives `country` (None: not in the registry), as
    stdnum turns it into a regular expression."""
    props = _IBAN_REGISTRY.info(country)[0][1]
    if not props:
        return None
    layout = _STRUCTURE_PART.sub(
        lambda m: f"{_STRUCTURE_CLASS[m.group(2)]}{{{m.group(1)}}}", props.get("bban", "")
    )
    return re.compile(f"^{layout}$")


def mod97_ok(compact: str) -> bool:
    """ISO 7064 mod 97-10 over the IBAN with its first four characters moved to the end."""
    return int((compact[4:] + compact[:4]).translate(_BASE36)) % 97 == 1


class IbanRecognizer(Recognizer):
    entity = "IBAN_CODE"
    name = "iban"
    patterns = (Pattern("iban", _regex(), 0.3, prefilter=_prefilter()),)
    context = ("iban", "bank", "account", "acct", "transfer", "wire", "sepa", "bic", "swift")
    field_names = ("iban", "ibancode", "ibannumber", "bankaccount", "bankaccountnumber")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        compact = candidate.replace(" ", "")
        if len(compact) != IBAN_LENGTHS.get(compact[:2]):
            return None
        structure = bban_structure(compact[:2])
        if structure is None or not mod97_ok(compact) or not structure.match(compact[4:]):
            return None
        return self.validated_score
