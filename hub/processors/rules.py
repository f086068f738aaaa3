"""Validation rules of the processor stage: pure functions driven by ``policies/validation.yaml``.

A ``Validator`` compiles one department's rules once into plain closures; ``validate_batch``
runs them over each record. A check reads a working copy of the record (text stripped, blank
text as ``None``), may write a normalised value back for the rules after it, and returns a
``Reason`` when the record breaks the rule. Every broken rule is reported, not only the first.
Reasons carry the rule id and the field, and never the value.

Speed: phonenumbers and email-validator cost tens of microseconds a call. The common shapes
take exact shortcuts that give the library's own answer (checked by the unit tests against
the full call): phone numbers go through ``hub.processors.phones`` (answers cached, region
metadata compiled once, a plain NANP number without ``phonenumbers.parse``), and a plain
ASCII address validates its domain once per distinct domain (cached) instead of once per
record.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from phonenumbers import geocoder

from hub.errors import ConfigError
from hub.policies import (
    CountryRule,
    DateRule,
    EmailRule,
    EnumRule,
    MaxLengthRule,
    PhoneRule,
    RequiredRule,
    Rule,
    ValidationPolicy,
)
from hub.processors.phones import PHONE_REGIONS, normalise_phone

__all__ = [
    "ISO_ALPHA2",
    "Decision",
    "Reason",
    "Validator",
    "normalise_email",
    "normalise_phone",
    "resolve_country",
]


@dataclass(frozen=True, slots=True)
class Reason:
    """One broken rule. ``message`` is safe to show: it never contains the value."""

    rule_id: str
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one record: the clean record when valid, every reason when not."""

    valid: bool
    record: dict[str, Any] | None
    reasons: tuple[Reason, ...]


Values = dict[str, Any]
Check = Callable[[Values], Reason | None]


class Validator:
    """The compiled rules of one department."""

    __slots__ = ("_checks", "_department", "_output_fields", "_policy_version")

    def __init__(self, policy: ValidationPolicy, department: str) -> None:
        rules = policy.departments.get(department)
        if rules is None:
            known = ", ".join(sorted(policy.departments)) or "none"
            raise ConfigError(
                f"validation policy {policy.version!r} has no department {department!r} "
                f"(known: {known})"
            )
        self._department = department
        self._policy_version = policy.version
        self._output_fields = rules.output_fields
        self._checks: tuple[Check, ...] = tuple(_compile(rule) for rule in rules.rules)

    @property
    def policy_version(self) -> str:
        return self._policy_version

    @property
    def department(self) -> str:
        return self._department

    def validate(self, record: Mapping[str, Any]) -> Decision:
        values: Values = {
            k: (v.strip() or None) if isinstance(v, str) else v for k, v in record.items()
        }
        reasons: list[Reason] | None = None
        for check in self._checks:
            reason = check(values)
            if reason is not None:
                if reasons is None:
                    reasons = []
                reasons.append(reason)
        if reasons:
            return Decision(False, None, tuple(reasons))
        return Decision(True, {name: values.get(name) for name in self._output_fields}, ())

    def validate_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """One decision per record, in input order."""
        validate = self.validate
        return [validate(record) for record in records]


# -- compiling rules into checks ----------------------------------------------------------


def _compile(rule: Rule) -> Check:
    match rule:
        case RequiredRule():
            return _required(rule)
        case MaxLengthRule():
            return _max_length(rule)
        case EmailRule():
            return _email(rule)
        case PhoneRule():
            return _phone(rule)
        case DateRule():
            return _date(rule)
        case EnumRule():
            return _enum(rule)
        case CountryRule():
            return _country(rule)
    raise ConfigError(f"rule {rule.id}: no implementation for this rule kind")  # pragma: no cover


def _required(rule: RequiredRule) -> Check:
    name = rule.field
    reason = Reason(rule.id, name, f"{name} is required")

    def check(values: Values) -> Reason | None:
        return reason if values.get(name) is None else None

    return check


def _max_length(rule: MaxLengthRule) -> Check:
    name, limit = rule.field, rule.max
    reason = Reason(rule.id, name, f"{name} is longer than {limit} characters")

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            return reason
        return None

    return check


def _email(rule: EmailRule) -> Check:
    name, allow_smtputf8 = rule.field, rule.allow_smtputf8
    reasons: dict[str, Reason] = {}

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if value is None:
            return None
        ok, result = normalise_email(str(value), allow_smtputf8=allow_smtputf8)
        if ok:
            values[name] = result
            return None
        reason = reasons.get(result)
        if reason is None:
            message = f"{name} is not a valid e-mail address ({result})"
            reason = reasons[result] = Reason(rule.id, name, message)
        return reason

    return check


def _phone(rule: PhoneRule) -> Check:
    name, country_field, default_region = rule.field, rule.country_field, rule.default_region
    e164_field, display_field, require_nanp = rule.e164_field, rule.display_field, rule.require_nanp
    not_nanp = Reason(rule.id, name, f"{name} is not a North American (+1) number")
    reasons: dict[str, Reason] = {}

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if value is None:
            values[e164_field] = values[display_field] = None
            return None
        region = default_region
        if country_field is not None:
            country = values.get(country_field)
            if isinstance(country, str):
                resolved = resolve_country(country)
                if resolved is not None and resolved in PHONE_REGIONS:
                    region = resolved
        ok, e164, display = normalise_phone(str(value), region)
        if not ok:
            reason = reasons.get(e164)
            if reason is None:
                reason = reasons[e164] = Reason(rule.id, name, f"{name} {e164}")
            return reason
        if require_nanp and not e164.startswith("+1"):
            return not_nanp
        values[e164_field] = e164
        values[display_field] = display
        return None

    return check


def _date(rule: DateRule) -> Check:
    name = rule.field
    reason = Reason(rule.id, name, f"{name} is not an ISO-8601 date (YYYY-MM-DD)")

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if value is None:
            return None
        if isinstance(value, datetime):
            values[name] = value.date()
            return None
        if isinstance(value, date):
            return None
        parsed = _parse_date(str(value))
        if parsed is None:
            return reason
        values[name] = parsed
        return None

    return check


def _enum(rule: EnumRule) -> Check:
    name = rule.field
    canonical = {v.strip().casefold(): v.strip() for v in rule.values}
    allowed = ", ".join(v.strip() for v in rule.values)
    reason = Reason(rule.id, name, f"{name} is not one of the allowed values: {allowed}")

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if value is None:
            return None
        match = canonical.get(str(value).casefold())
        if match is None:
            return reason
        values[name] = match
        return None

    return check


def _country(rule: CountryRule) -> Check:
    name = rule.field

    def check(values: Values) -> Reason | None:
        value = values.get(name)
        if isinstance(value, str):
            code = resolve_country(value)
            if code is not None:
                values[name] = code
        return None  # an unknown country is kept as entered; it breaks no rule

    return check


# -- dates ----------------------------------------------------------------------------------


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:  # a date-time: keep its calendar date as written
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


# -- e-mail ---------------------------------------------------------------------------------

# The common shape: an ASCII dot-atom local part and an ASCII host name. For it the library's
# answer is the local part (lower-cased for RFC 2142 role names) plus the domain's own
# normalised form, subject to the length limits, so the domain is validated once and cached.
_PLAIN_EMAIL = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9.-]+)"
)
_EMAIL_MAX_LENGTH = 254
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)

# email-validator's messages quote the offending characters; reasons must not, so each
# message is reduced to a fixed description (first match wins).
_EMAIL_PROBLEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("full-width", "small commercial at"), "a look-alike character instead of the @-sign"),
    (("must have an @-sign",), "no @-sign"),
    (("something before the @-sign",), "nothing before the @-sign"),
    (("something after the @-sign",), "nothing after the @-sign"),
    (("too long", "so many characters"), "too long"),
    (("should have a period",), "no period after the @-sign"),
    (("top-level domain",), "no valid top-level domain"),
    (("special-use or reserved",), "a special-use or reserved domain"),
    (("Internationalized characters before",), "non-ASCII characters before the @-sign"),
    (("period", "hyphen"), "a period or hyphen in the wrong place"),
    (
        ("display name", "angle bracket", "quote", "Quoting", "after the email address"),
        "a display name, quotes or brackets around the address",
    ),
    (("bracket",), "an IP address instead of a domain"),
    (("character", "IDNA", "ASCII"), "characters that are not allowed"),
)


def _email_problem(library_message: str) -> str:
    for needles, description in _EMAIL_PROBLEMS:
        if any(needle in library_message for needle in needles):
            return description
    return "not accepted"


def _full_email(text: str, allow_smtputf8: bool) -> tuple[bool, str]:
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=allow_smtputf8)
    except EmailNotValidError as exc:
        return False, _email_problem(str(exc))
    return True, result.normalized


@lru_cache(maxsize=16384)
def _email_domain(domain: str) -> tuple[bool, str]:
    """(ok, normalised domain or a description of the problem) of a host name, cached."""
    try:
        result = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError as exc:
        return False, _email_problem(str(exc))
    return True, result.domain


def normalise_email(text: str, *, allow_smtputf8: bool = True) -> tuple[bool, str]:
    """``(True, normalised address)`` or ``(False, a description of the problem)``.

    The same answer as ``email_validator.validate_email(text, check_deliverability=False)``.
    """
    match = _PLAIN_EMAIL.fullmatch(text)
    if match is None:
        return _full_email(text, allow_smtputf8)
    local, domain = match.groups()
    ok, normal_domain = _email_domain(domain)
    if not ok:
        return False, normal_domain
    if local.lower() in _ROLE_MAILBOXES:
        local = local.lower()
    normalized = f"{local}@{normal_domain}"
    if len(normalized.encode()) > _EMAIL_MAX_LENGTH:  # a punycode domain can grow in UTF-8
        return _full_email(text, allow_smtputf8)  # let the library word the length problem
    return True, normalized


# -- countries ------------------------------------------------------------------------------

# ISO 3166-1: alpha-2 and alpha-3 codes of every officially assigned country.
_ISO_3166_TEXT = (
    "AF AFG AX ALA AL ALB DZ DZA AS ASM AD AND AO AGO AI AIA AQ ATA AG ATG AR ARG AM ARM "
    "AW ABW AU AUS AT AUT AZ AZE BS BHS BH BHR BD BGD BB BRB BY BLR BE BEL BZ BLZ BJ BEN "
    "BM BMU BT BTN BO BOL BQ BES BA BIH BW BWA BV BVT BR BRA IO IOT BN BRN BG BGR BF BFA "
    "BI BDI CV CPV KH KHM CM CMR CA CAN KY CYM CF CAF TD TCD CL CHL CN CHN CX CXR CC CCK "
    "CO COL KM COM CG COG CD COD CK COK CR CRI CI CIV HR HRV CU CUB CW CUW CY CYP CZ CZE "
    "DK DNK DJ DJI DM DMA DO DOM EC ECU EG EGY SV SLV GQ GNQ ER ERI EE EST SZ SWZ ET ETH "
    "FK FLK FO FRO FJ FJI FI FIN FR FRA GF GUF PF PYF TF ATF GA GAB GM GMB GE GEO DE DEU "
    "GH GHA GI GIB GR GRC GL GRL GD GRD GP GLP GU GUM GT GTM GG GGY GN GIN GW GNB GY GUY "
    "HT HTI HM HMD VA VAT HN HND HK HKG HU HUN IS ISL IN IND ID IDN IR IRN IQ IRQ IE IRL "
    "IM IMN IL ISR IT ITA JM JAM JP JPN JE JEY JO JOR KZ KAZ KE KEN KI KIR KP PRK KR KOR "
    "KW KWT KG KGZ LA LAO LV LVA LB LBN LS LSO LR LBR LY LBY LI LIE LT LTU LU LUX MO MAC "
    "MG MDG MW MWI MY MYS MV MDV ML MLI MT MLT MH MHL MQ MTQ MR MRT MU MUS YT MYT MX MEX "
    "FM FSM MD MDA MC MCO MN MNG ME MNE MS MSR MA MAR MZ MOZ MM MMR NA NAM NR NRU NP NPL "
    "NL NLD NC NCL NZ NZL NI NIC NE NER NG NGA NU NIU NF NFK MK MKD MP MNP NO NOR OM OMN "
    "PK PAK PW PLW PS PSE PA PAN PG PNG PY PRY PE PER PH PHL PN PCN PL POL PT PRT PR PRI "
    "QA QAT RE REU RO ROU RU RUS RW RWA BL BLM SH SHN KN KNA LC LCA MF MAF PM SPM VC VCT "
    "WS WSM SM SMR ST STP SA SAU SN SEN RS SRB SC SYC SL SLE SG SGP SX SXM SK SVK SI SVN "
    "SB SLB SO SOM ZA ZAF GS SGS SS SSD ES ESP LK LKA SD SDN SR SUR SJ SJM SE SWE CH CHE "
    "SY SYR TW TWN TJ TJK TZ TZA TH THA TL TLS TG TGO TK TKL TO TON TT TTO TN TUN TR TUR "
    "TM TKM TC TCA TV TUV UG UGA UA UKR AE ARE GB GBR US USA UM UMI UY URY UZ UZB VU VUT "
    "VE VEN VN VNM VG VGB VI VIR WF WLF EH ESH YE YEM ZM ZMB ZW ZWE"
)
_ISO_3166 = _ISO_3166_TEXT.split()
ISO_ALPHA2: frozenset[str] = frozenset(_ISO_3166[0::2])

# English names and spellings people type that phonenumbers' English names do not cover.
_COUNTRY_ALIASES: dict[str, str] = {
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "united states of america": "US",
    "america": "US",
    "u s": "US",
    "u s a": "US",
    "russian federation": "RU",
    "korea": "KR",
    "republic of korea": "KR",
    "korea republic of": "KR",
    "czechia": "CZ",
    "holland": "NL",
    "viet nam": "VN",
    "turkiye": "TR",
    "north macedonia": "MK",
    "ivory coast": "CI",
    "eswatini": "SZ",
    "uae": "AE",
    "cabo verde": "CV",
    "dr congo": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "macau": "MO",
    "burma": "MM",
    "vatican city": "VA",
    "holy see": "VA",
    "saint barthelemy": "BL",
    "western sahara": "EH",
    "saint martin": "MF",
    "antarctica": "AQ",
    "bouvet island": "BV",
    "heard island and mcdonald islands": "HM",
    "pitcairn": "PN",
    "pitcairn islands": "PN",
    "french southern territories": "TF",
    "south georgia and the south sandwich islands": "GS",
    "united states minor outlying islands": "UM",
    "deutschland": "DE",
    "espana": "ES",
    "brasil": "BR",
    "italia": "IT",
    "nederland": "NL",
    "schweiz": "CH",
    "suisse": "CH",
    "osterreich": "AT",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "polska": "PL",
    "mexico": "MX",
}

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _country_key(text: str) -> str:
    """Accents, case, dots and apostrophes ignored; other punctuation is a space."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.replace(".", "").replace("'", "").replace("\u2019", "")
    key = _NOT_ALNUM.sub(" ", folded).strip()
    return key.removeprefix("the ")


def _country_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for alpha2, alpha3 in zip(_ISO_3166[0::2], _ISO_3166[1::2], strict=True):
        table[alpha2.lower()] = alpha2
        table[alpha3.lower()] = alpha2
    for region in phonenumbers.SUPPORTED_REGIONS:  # English names shipped with phonenumbers
        example = phonenumbers.example_number(region)
        name = geocoder.country_name_for_number(example, "en") if example else ""
        if name and region in ISO_ALPHA2:
            table.setdefault(_country_key(name), region)
    for alias, alpha2 in _COUNTRY_ALIASES.items():
        table[_country_key(alias)] = alpha2
    return table


_COUNTRIES = _country_table()


@lru_cache(maxsize=4096)
def resolve_country(text: str) -> str | None:
    """ISO 3166-1 alpha-2 code of a country given by alpha-2, alpha-3 or English name."""
    return _COUNTRIES.get(_country_key(text))
