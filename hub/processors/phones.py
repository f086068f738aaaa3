"""Phone numbers for the validation rules: phonenumbers' own answer, for less.

``normalise_phone`` answers what ``phonenumbers.parse`` + ``is_valid_number`` +
``format_number`` answer (the unit tests check it against those calls over every region's
example numbers in several written forms, plus mangled and invalid ones). It is the most
expensive rule of the sales policy (~40 µs a number through the library), so:

- answers are cached per (text, region): a lead's number comes back with every re-export of
  its sheet, and the cache holds nothing but the answer;
- a plain North American number skips ``phonenumbers.parse``, and so does any number
  written with digits and separators only: `hub.dlp.phone_validity.parse_digits` replays
  ``parse`` for those (~40 µs through the library; the rest of the lead's rules cost less);
- validity and the INTERNATIONAL format use each region's metadata patterns compiled once.
  The library looks every pattern up in ``re``'s cache on each call and tries the number
  types one at a time; here the type patterns that allow a number's length are one
  alternation, so a number costs one ``fullmatch``.

Anything outside what is replicated here (an extension, a national number of 0) is
formatted by the library itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberFormat,
)

from hub.dlp.phone_validity import UNPARSEABLE, parse_digits

__all__ = ["NANP_REGIONS", "PHONE_REGIONS", "normalise_phone"]

PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))
_NON_GEO = "001"  # phonenumbers' REGION_CODE_FOR_NON_GEO_ENTITY

# The common shape of a North American number: optional +1 or trunk 1, then NPA-NXX-XXXX
# (both starting 2-9) with optional brackets around the area code and one separator between
# groups. Anything else goes through phonenumbers.parse.
_PLAIN_NANP = re.compile(
    r"(?:(?:(\+1)|(1))[ .-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d))[ .-]?([2-9]\d\d)[ .-]?(\d{4})"
)
_UNPARSEABLE = "could not be read as a phone number"
CACHE_SIZE = 65_536


def _nanp_display(national: str) -> str:
    return f"+1-{national[:3]}-{national[3:6]}-{national[6:]}"


@lru_cache(maxsize=CACHE_SIZE)
def normalise_phone(text: str, region: str) -> tuple[bool, str, str]:
    """``(True, E.164, display)`` or ``(False, a description of the problem, "")``.

    ``region`` is the default region for numbers without a ``+`` country code. The display
    form is +1-XXX-XXX-XXXX for NANP numbers, phonenumbers' INTERNATIONAL format otherwise.
    """
    match = _PLAIN_NANP.fullmatch(text)
    if match is not None and (match[1] or region in NANP_REGIONS):
        national = (match[3] or match[4]) + match[5] + match[6]
        hint = region if region in NANP_REGIONS else "US"
        if _valid_for_region(1, national, hint) or _is_valid(1, national):
            return True, "+1" + national, _nanp_display(national)
        return False, f"is not a valid number for region {hint}", ""
    number: PhoneNumber | None = None
    parsed = parse_digits(text, region)
    if parsed is None:  # not plain digits and separators: the library reads it
        try:
            number = phonenumbers.parse(text, region)
        except NumberParseException:
            return False, _UNPARSEABLE, ""
        country_code = number.country_code or 0
        nsn = phonenumbers.national_significant_number(number)
    elif parsed == UNPARSEABLE:
        return False, _UNPARSEABLE, ""
    else:
        country_code, nsn = parsed
    if not _is_valid(country_code, nsn):
        if phonenumbers.country_code_for_region(region) != country_code:
            region = phonenumbers.region_code_for_country_code(country_code)
        if region == phonenumbers.UNKNOWN_REGION:
            return False, "has an unknown country code", ""
        return False, f"is not a valid number for region {region}", ""
    if country_code == 1:
        return True, "+1" + nsn, _nanp_display(nsn)
    return True, f"+{country_code}{nsn}", _international(text, region, number, country_code, nsn)


# -- the region metadata, compiled once -----------------------------------------------------

# The number types phonenumbers' _number_type_helper tries, in its order; any match makes a
# number that matches the general description valid. Mobile is skipped when the region
# declares the same pattern for mobile and fixed line (the library never tests it then).
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)

_Desc = tuple[frozenset[int] | None, str]  # (possible lengths or None for any, pattern)


@dataclass(frozen=True, slots=True)
class _Format:
    leading: re.Pattern[str] | None
    pattern: re.Pattern[str]
    rule: str
    #: `rule` (``\1 \2-\3``) as a `str.format` template (``{0} {1}-{2}``): ``re.sub``
    #: with a template string runs Python code per call to expand it. None for a pattern
    #: that matches the empty string (re.sub would also rewrite an empty match at the end).
    template: str | None


class _Region:
    """One metadata's patterns: general description, number types, leading digits, formats."""

    __slots__ = ("_by_length", "_types", "formats", "general", "leading_digits")

    def __init__(self, metadata: PhoneMetadata) -> None:
        general = _desc(metadata.general_desc)
        self.general = None if general is None else (general[0], re.compile(general[1]))
        names = _TYPES if metadata.same_mobile_and_fixed_line_pattern else (*_TYPES, "mobile")
        types = (_desc(getattr(metadata, name)) for name in names)
        self._types: tuple[_Desc, ...] = tuple(t for t in types if t is not None)
        self._by_length: dict[int, re.Pattern[str] | None] = {}
        leading = metadata.leading_digits
        self.leading_digits = re.compile(leading) if leading is not None else None
        available = metadata.intl_number_format or metadata.number_format
        self.formats = tuple(
            _Format(
                re.compile(f.leading_digits_pattern[-1]) if f.leading_digits_pattern else None,
                re.compile(f.pattern),
                f.format,
                None if re.fullmatch(f.pattern, "") else _template(f.format),
            )
            for f in available
            if f.pattern is not None and f.format is not None  # always set in the metadata
        )

    def known_type(self, nsn: str) -> bool:
        """phonenumbers' ``_number_type_helper(nsn, metadata) != UNKNOWN``."""
        general = self.general
        if general is None:
            return False
        lengths, pattern = general
        if (lengths is not None and len(nsn) not in lengths) or not pattern.fullmatch(nsn):
            return False
        size = len(nsn)
        try:
            combined = self._by_length[size]
        except KeyError:
            accepted = [p for lens, p in self._types if lens is None or size in lens]
            combined = re.compile("|".join(f"(?:{p})" for p in accepted)) if accepted else None
            self._by_length[size] = combined
        return combined is not None and combined.fullmatch(nsn) is not None

    def format_nsn(self, nsn: str) -> str:
        """phonenumbers' ``_format_nsn(nsn, metadata, INTERNATIONAL)``."""
        for f in self.formats:
            if f.leading is not None and not f.leading.match(nsn):
                continue
            # The library applies the first pattern that matches all of nsn, by re.sub: the
            # leftmost match rewritten. Where that match is all of nsn, its groups fill the
            # template; otherwise (a shorter leftmost match) re.sub itself answers.
            m = f.pattern.match(nsn)
            if m is not None and m.end() == len(nsn) and f.template is not None:
                return f.template.format(*(g or "" for g in m.groups()))
            if f.pattern.fullmatch(nsn):
                return f.pattern.sub(f.rule, nsn)
        return nsn


def _template(rule: str) -> str:
    """A metadata format rule, whose only specials are group references ``\\N``, as a
    `str.format` template."""
    escaped = rule.replace("{", "{{").replace("}", "}}")
    return re.sub(r"\\([1-9])", lambda m: "{" + str(int(m[1]) - 1) + "}", escaped)


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    """``None`` for a description that never matches (absent, or without a pattern)."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length) if desc.possible_length else None
    return lengths, desc.national_number_pattern


@lru_cache(maxsize=1024)
def _region(country_code: int, region_code: str) -> _Region | None:
    """phonenumbers' ``metadata_for_region_or_calling_code``, compiled."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region_code)
    return None if metadata is None else _Region(metadata)


@lru_cache(maxsize=1024)
def _listed_region(region_code: str) -> _Region | None:
    """phonenumbers' ``metadata_for_region`` (what ``region_code_for_number`` reads), compiled."""
    metadata = PhoneMetadata.metadata_for_region(region_code, None)
    return None if metadata is None else _Region(metadata)


def _region_code_for(country_code: int, nsn: str) -> str | None:
    """phonenumbers' ``region_code_for_number``."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return None
    if len(regions) == 1:
        return regions[0]
    for region_code in regions:
        compiled = _listed_region(region_code)
        if compiled is None:
            continue
        if compiled.leading_digits is not None:
            if compiled.leading_digits.match(nsn):
                return region_code
        elif compiled.known_type(nsn):
            return region_code
    return None


def _valid_for_region(country_code: int, nsn: str, region_code: str | None) -> bool:
    """phonenumbers' ``is_valid_number_for_region``."""
    if region_code is None:
        return False
    compiled = _region(country_code, region_code.upper())
    if compiled is None or (
        region_code != _NON_GEO
        and country_code != phonenumbers.country_code_for_valid_region(region_code)
    ):
        return False
    return compiled.known_type(nsn)


def _is_valid(country_code: int, nsn: str) -> bool:
    """phonenumbers' ``is_valid_number``."""
    return _valid_for_region(country_code, nsn, _region_code_for(country_code, nsn))


def _international(
    text: str, region: str, number: PhoneNumber | None, country_code: int, nsn: str
) -> str:
    """phonenumbers' ``format_number(parse(text, region), INTERNATIONAL)`` for a valid
    number; `number` is that parse, or None where `parse_digits` read the text (which then
    has no extension)."""
    main_region = phonenumbers.region_code_for_country_code(country_code)
    compiled = _region(country_code, main_region.upper())
    if compiled is None or (number is not None and number.extension) or not nsn.strip("0"):
        if number is None:
            number = phonenumbers.parse(text, region)
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    return f"+{country_code} {compiled.format_nsn(nsn)}"
