"""libphonenumber's verdict — ``is_valid_number(parse(candidate, region))`` — for the
candidates the phone recognizer's pattern finds, at a fraction of the cost.

``phonenumbers.parse`` spends most of its ~15 µs on work that is only needed for free-form
input (finding the number in the string, extensions, RFC 3966, letters, Unicode digits);
``is_valid_number`` then runs the region's number-type patterns one by one through a
compile cache, twice for countries that share a calling code. A candidate of the phone
pattern is ASCII digits, at most one leading ``+`` or ``(`` and the separators
``( ) . -`` and space: for such a string ``parse`` depends only on its digits and on
whether it starts with ``+``. `is_valid` replays ``parse`` on those two facts — the same
steps in the same order, calling phonenumbers' own digit-level helpers for the national
prefix, the international (IDD) prefix, country codes and length tests — and checks
validity with each region's type patterns joined into one precompiled expression per
number length. Anything else (other characters, non-ASCII digits) goes to phonenumbers
itself. ``tests/unit/dlp/test_phone_validity.py`` checks the two agree on every candidate
of the recognizer tests and of the corpus and on random ones. `parse_digits` is the
replayed ``parse`` on its own; the validation rules' phone normalisation
(`hub.processors.phones`) uses it too. `is_valid_in` tries several regions, reading the
candidate once.

What the replay looks up in the metadata depends only on the region or the calling code,
so it is looked up once per region (`_Region`, `_Plan`) rather than through phonenumbers'
own (interpreted) functions and attributes each time. The metadata's patterns only ever
see ASCII digits here, so they are compiled for Latin-1 text (`hub.dlp.latin1`). With the
candidate read once for all the regions tried, the validity checks of the phone
recognizer went from 13.3 to 7.6 M instructions a pass over the bench corpus (callgrind).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as pu

from hub.dlp.latin1 import specialised

_SIMPLE = re.compile(r"[+(]?[0-9](?:[0-9() .\-]*[0-9])?")
_MIN_NSN = pu._MIN_LENGTH_FOR_NSN
_MAX_NSN = pu._MAX_LENGTH_FOR_NSN
_MAX_INPUT = pu._MAX_INPUT_STRING_LENGTH  # parse refuses longer text
_NOT_STRIPPED = (
    pu.ValidationResult.TOO_SHORT,
    pu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    pu.ValidationResult.INVALID_LENGTH,
)
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


class _Invalid(Exception):
    """parse() would raise NumberParseException."""


def is_valid(candidate: str, region: str | None) -> bool:
    """``phonenumbers.is_valid_number(phonenumbers.parse(candidate, region))``, False when
    parse raises."""
    return is_valid_in(candidate, (region,))


def is_valid_in(candidate: str, regions: Sequence[str | None]) -> bool:
    """`is_valid` in any of `regions` (tried in order), the candidate read once."""
    digits = _replayed_digits(candidate)
    if digits is None:
        return any(_library(candidate, region) for region in regions)
    plus = candidate[0] == "+"
    for region in regions:
        try:
            code, national = _parse(digits, plus, region)
        except _Invalid:
            continue
        if code != 0 and _valid_number(code, national):
            return True
    return False


#: What `parse_digits` answers where ``phonenumbers.parse`` raises: country code 0, which
#: no parsed number has. Compare by value (compiled code does not keep tuples' identity).
UNPARSEABLE: tuple[int, str] = (0, "")


def parse_digits(text: str, region: str | None) -> tuple[int, str] | None:
    """``phonenumbers.parse(text, region)`` replayed for the texts the replay covers (ASCII
    digits, at most one leading ``+`` or ``(``, the separators ``( ) . -`` and space, at
    least three digits, no longer than parse reads): the number's country code and national
    significant number, or `UNPARSEABLE` where parse raises. None for any other text: ask
    phonenumbers."""
    digits = _replayed_digits(text)
    if digits is None:
        return None
    try:
        return _parse(digits, text[0] == "+", region)
    except _Invalid:
        return UNPARSEABLE


def _replayed_digits(text: str) -> str | None:
    """The digits of a text the replay covers (see `parse_digits`), None for any other."""
    if not (text.isascii() and len(text) <= _MAX_INPUT and _SIMPLE.fullmatch(text)):
        return None
    # bytes.translate deletes in one C loop; str.translate looked each distinct character
    # up in a dict (~2,200 instructions a candidate, callgrind).
    digits = text.encode("ascii").translate(None, _PUNCTUATION).decode("ascii")
    return digits if len(digits) >= 3 else None


def _library(candidate: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


_PUNCTUATION = b"+() .-"
# Typed as Any: phonenumbers' stub says (str, str, bool), but the carrier code is None when
# there is none, and compiled code (hub.dlp.native) checks declared types.
_strip_national_prefix: Any = pu._maybe_strip_national_prefix_carrier_code


# -- parse ---------------------------------------------------------------------------------
def _parse(digits: str, plus: bool, region: str | None) -> tuple[int, str]:
    """(country code, national significant number) as ``parse`` finds them."""
    if region not in pu.SUPPORTED_REGIONS and not plus:
        raise _Invalid  # missing or invalid default region
    known = None if region is None else _region(region)
    try:
        code, national = _extract_country_code(digits, plus, known)
    except _InvalidCountryCode:
        if not plus:
            raise _Invalid from None
        code, national = _extract_country_code(digits, False, known)
        if code == 0:
            raise _Invalid from None
    if code != 0:
        number_region, of_code = _calling_code_region(code)
        if number_region != region:
            known = of_code
    else:
        national += digits
        if known is not None:
            code = known.country_code
    if len(national) < _MIN_NSN:
        raise _Invalid
    if known is not None and _has_national_prefix(national, known):
        metadata = known.metadata
        _, potential, _ = _strip_national_prefix(national, metadata)
        if pu._test_number_length(potential, metadata) not in _NOT_STRIPPED:
            national = potential
    if len(national) > _MAX_NSN:
        raise _Invalid
    return code, national


class _Region:
    """What the replay reads of one region's metadata, read once."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata
        self.country_code = int(metadata.country_code or 0)
        self.own = str(metadata.country_code)  # the country code as written
        self.general = metadata.general_desc
        idd = metadata.international_prefix
        self.idd = None if idd is None else _compiled(idd)
        prefix = metadata.national_prefix_for_parsing
        self.national_prefix = _compiled(prefix) if prefix else None


# Region code -> its record (None: no metadata), for the supported regions only (a bounded
# set; any other region string is looked up each time).
_REGIONS: dict[str, _Region | None] = {}
# Calling code -> its main region and that region's record. Calling codes have 1-3 digits.
_CALLING_CODES: dict[int, tuple[str, _Region | None]] = {}


def _region(region: str) -> _Region | None:
    """The record of ``metadata_for_region(region.upper(), None)``."""
    if region in _REGIONS:
        return _REGIONS[region]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
    known = None if metadata is None else _Region(metadata)
    if region in pu.SUPPORTED_REGIONS:
        _REGIONS[region] = known
    return known


def _calling_code_region(code: int) -> tuple[str, _Region | None]:
    """``region_code_for_country_code(code)`` and the record of
    ``metadata_for_region_or_calling_code(code, that region)``."""
    found = _CALLING_CODES.get(code)
    if found is None:
        number_region = pu.region_code_for_country_code(code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            code, number_region
        )
        found = (number_region, None if metadata is None else _Region(metadata))
        if code < 1000:
            _CALLING_CODES[code] = found
    return found


class _InvalidCountryCode(_Invalid):
    pass


def _has_national_prefix(number: str, known: _Region) -> bool:
    """Whether ``_maybe_strip_national_prefix_carrier_code`` may strip anything: it does
    nothing when the region's national prefix pattern does not match (nor then does
    parse's length test change the number)."""
    prefix = known.national_prefix
    return bool(number) and prefix is not None and prefix.match(number) is not None


def _extract_country_code(digits: str, plus: bool, known: _Region | None) -> tuple[int, str]:
    """``_maybe_extract_country_code`` on an input that is `digits`, after a ``+`` when
    `plus`."""
    full = digits
    international = plus
    if not plus and known is not None and known.idd is not None:
        idd = known.idd
        if idd.match(digits):
            international, full = pu._parse_prefix_as_idd(idd, digits)
    if international:
        if len(full) <= _MIN_NSN:
            raise _Invalid  # too short after the IDD
        code, rest = pu._extract_country_code(full)
        if code != 0:
            return code, rest
        raise _InvalidCountryCode
    if known is not None:
        own = known.own
        if full.startswith(own):
            metadata, general = known.metadata, known.general
            _, potential, _ = _strip_national_prefix(full[len(own) :], metadata)
            if (
                not pu._match_national_number(full, general, False)
                and pu._match_national_number(potential, general, False)
            ) or pu._test_number_length(full, metadata) == pu.ValidationResult.TOO_LONG:
                return metadata.country_code, potential
    return 0, ""


# -- is_valid_number -------------------------------------------------------------------------
def _valid_number(code: int, national: str) -> bool:
    """``is_valid_number`` of a parsed number: the region it belongs to (the first of the
    calling code's regions whose leading digits match, or that holds it valid), then
    validity there."""
    found = _PLANS.get(code)
    if found is None:
        found = _PLANS[code] = _calling_code(code)
    lengths, plans = found
    if lengths is not None and len(national) not in lengths:
        return False  # no region of this calling code takes numbers this long
    if len(plans) == 1:
        return plans[0].valid(national)
    for plan in plans:
        if plan.leading is not None:
            if plan.leading.match(national):
                return plan.valid(national)
        elif plan.valid(national):
            return True
    return False


def _calling_code(code: int) -> tuple[frozenset[int] | None, tuple[_Plan, ...]]:
    """The plans of a calling code's regions in libphonenumber's order, and the lengths
    any of them accepts (None: not known)."""
    regions = pu.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) == 1:
        metadata = [
            phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        ]
    else:
        metadata = [
            phonenumbers.PhoneMetadata.metadata_for_region(r.upper(), None) for r in regions
        ]
    plans = tuple(_Plan(m) for m in metadata if m is not None)
    lengths: set[int] = set()
    for plan in plans:
        general = plan.metadata.general_desc
        if general is None:
            continue
        if not general.possible_length:
            return None, plans  # some region takes any length
        lengths.update(general.possible_length)
    return frozenset(lengths), plans


class _Plan:
    """One region's validity test: its general description, then any number type (the
    type patterns a number of a given length can match, joined into one expression)."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata
        leading = metadata.leading_digits
        self.leading = None if leading is None else _compiled(leading)
        # ``_is_number_matching_desc(national, general_desc)``, as read once: no pattern
        # (or no description) matches nothing; no lengths allow any length.
        general = metadata.general_desc
        pattern = None if general is None else general.national_number_pattern
        self.general = _compiled(pattern) if pattern else None
        self.general_lengths = frozenset(general.possible_length or ()) if pattern else frozenset()
        self.by_length: dict[int, re.Pattern[str] | None] = {}

    def valid(self, national: str) -> bool:
        general = self.general
        size = len(national)
        if (
            general is None
            or (self.general_lengths and size not in self.general_lengths)
            or general.fullmatch(national) is None
        ):
            return False
        combined = self.by_length.get(size, _UNSET)
        if combined is _UNSET:
            combined = self.by_length[size] = self._combined(size)
        return combined is not None and combined.fullmatch(national) is not None

    def _combined(self, size: int) -> re.Pattern[str] | None:
        m = self.metadata
        descs = [getattr(m, name) for name in _TYPES]
        if not m.same_mobile_and_fixed_line_pattern:
            descs.append(m.mobile)
        patterns = [
            d.national_number_pattern
            for d in descs
            if d is not None
            and d.national_number_pattern
            and (not d.possible_length or size in d.possible_length)
        ]
        if not patterns:
            return None
        return specialised("|".join(f"(?:{p})" for p in patterns))


_UNSET: Any = object()
# Calling code -> `_calling_code` (calling codes have 1-3 digits: a bounded table).
_PLANS: dict[int, tuple[frozenset[int] | None, tuple[_Plan, ...]]] = {}


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A metadata pattern, for the ASCII digit strings the replay matches it against."""
    return specialised(pattern)
