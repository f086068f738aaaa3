"""The processor stage's validation rules (hub.processors.rules): table-driven must-pass and
must-fail cases per rule kind, the shortcuts checked against the libraries' full answers, the
sales policy end to end against schemas/sales/Lead.avsc, and reasons that never carry a value.
"""

from __future__ import annotations

import io
import itertools
import json
import random
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email

from hub.errors import ConfigError
from hub.policies import ValidationPolicy, load_validation_policy
from hub.processors.rules import (
    ISO_ALPHA2,
    Decision,
    Reason,
    Validator,
    normalise_email,
    normalise_phone,
    resolve_country,
)

REPO = Path(__file__).resolve().parents[2]
LEAD_SCHEMA = REPO / "schemas" / "sales" / "Lead.avsc"


def one_rule(rule: dict[str, Any], *, output: tuple[str, ...] | None = None) -> Validator:
    """A validator of a department 't' with this one rule; the output is the rule's field
    (plus whatever the test asks for)."""
    fields = output or (rule["field"],)
    policy = ValidationPolicy.model_validate(
        {"version": "test-1", "departments": {"t": {"output_fields": fields, "rules": [rule]}}}
    )
    return Validator(policy, "t")


def run(validator: Validator, record: dict[str, Any]) -> Decision:
    [decision] = validator.validate_batch([record])
    return decision


# -- required ---------------------------------------------------------------------------------

REQUIRED = {"id": "t.last_name.required", "kind": "required", "field": "last_name"}


@pytest.mark.parametrize(
    ("value", "expected"), [("Lee", "Lee"), ("  Lee ", "Lee"), ("O'Brien-Smith", "O'Brien-Smith")]
)
def test_required_passes(value: str, expected: str) -> None:
    decision = run(one_rule(REQUIRED), {"last_name": value})
    assert decision == Decision(True, {"last_name": expected}, ())


@pytest.mark.parametrize(
    "record", [{"last_name": None}, {"last_name": ""}, {"last_name": " \t"}, {}]
)
def test_required_fails(record: dict[str, Any]) -> None:
    decision = run(one_rule(REQUIRED), record)
    assert not decision.valid
    assert decision.record is None
    assert decision.reasons == (
        Reason("t.last_name.required", "last_name", "last_name is required"),
    )


# -- max_length -------------------------------------------------------------------------------

MAX_LENGTH = {"id": "t.company.max_length", "kind": "max_length", "field": "company", "max": 10}


@pytest.mark.parametrize("value", ["Acme", "0123456789", " 0123456789 ", "Ünïcødé ÄÖ", None])
def test_max_length_passes(value: str | None) -> None:
    assert run(one_rule(MAX_LENGTH), {"company": value}).valid


@pytest.mark.parametrize("value", ["01234567890", "Acme Corporation International", "ÜÜÜÜÜÜÜÜÜÜÜ"])
def test_max_length_fails(value: str) -> None:
    decision = run(one_rule(MAX_LENGTH), {"company": value})
    assert decision.reasons == (
        Reason("t.company.max_length", "company", "company is longer than 10 characters"),
    )


# -- email ------------------------------------------------------------------------------------

EMAIL = {"id": "t.email.format", "kind": "email", "field": "email"}

EMAIL_PASSES = [
    ("Ann.Lee@Example.COM", "Ann.Lee@example.com"),  # local part kept, domain lower-cased
    ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    ("Info@EXAMPLE.com", "info@example.com"),  # RFC 2142 role names are case-insensitive
    ("jörg.müller@example.de", "jörg.müller@example.de"),  # unicode local part
    ("用户@例子.广告", "用户@例子.广告"),  # unicode local part and domain
    ("x@xn--mller-kva.de", "x@müller.de"),  # punycode domain in its unicode form
    ("x@Müller.DE", "x@müller.de"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("  ann@example.com  ", "ann@example.com"),
]

EMAIL_FAILS = [
    ("ann.example.com", "no @-sign"),
    ("ann@", "nothing after the @-sign"),
    ("@example.com", "nothing before the @-sign"),
    ("ann.@example.com", "a period or hyphen in the wrong place"),  # trailing dot, local
    (".ann@example.com", "a period or hyphen in the wrong place"),
    ("ann@example.com.", "a period or hyphen in the wrong place"),  # trailing dot, domain
    ("a..b@example.com", "a period or hyphen in the wrong place"),
    ("ann@-example.com", "a period or hyphen in the wrong place"),
    ("ann@localhost", "no period after the @-sign"),
    ("ann@example.test", "a special-use or reserved domain"),
    ("ann@example.123", "no valid top-level domain"),
    ("Ann <ann@example.com>", "a display name, quotes or brackets around the address"),
    ('"ann"@example.com', "a display name, quotes or brackets around the address"),
    ("ann@[192.168.0.1]", "an IP address instead of a domain"),
    ("ann@exa mple.com", "characters that are not allowed"),
    ("ann@@example.com", "characters that are not allowed"),
    ("ann@ex_ample.com", "characters that are not allowed"),
    ("ann＠example.com", "a look-alike character instead of the @-sign"),
    ("a" * 250 + "@example.com", "too long"),
]


@pytest.mark.parametrize(("value", "expected"), EMAIL_PASSES)
def test_email_passes_and_is_normalised(value: str, expected: str) -> None:
    assert run(one_rule(EMAIL), {"email": value}) == Decision(True, {"email": expected}, ())


@pytest.mark.parametrize(("value", "problem"), EMAIL_FAILS)
def test_email_fails(value: str, problem: str) -> None:
    decision = run(one_rule(EMAIL), {"email": value})
    assert decision.reasons == (
        Reason("t.email.format", "email", f"email is not a valid e-mail address ({problem})"),
    )


def test_email_without_smtputf8_refuses_unicode_local_parts() -> None:
    validator = one_rule({**EMAIL, "allow_smtputf8": False})
    assert run(validator, {"email": "ann@example.com"}).valid
    decision = run(validator, {"email": "jörg@example.de"})
    assert [r.message for r in decision.reasons] == [
        "email is not a valid e-mail address (non-ASCII characters before the @-sign)"
    ]


def _email_corpus() -> list[str]:
    locals_ = [
        "ann",
        "Ann.Lee",
        "a+b",
        "info",
        "POSTMASTER",
        "o'neil",
        "x" * 64,
        "x" * 70,
        "a..b",
        ".a",
        "a.",
        "jörg",
        "a b",
        "",
        "a@b",
        "#!$%&'*+/=?^_`{|}~-",
    ]
    domains = [
        "example.com",
        "EXAMPLE.COM",
        "sub.example.co.uk",
        "xn--mller-kva.de",
        "müller.de",
        "localhost",
        "example.test",
        "example.123",
        "-x.com",
        "x-.com",
        "x..com",
        "x.com.",
        "a" * 63 + ".com",
        "a" * 64 + ".com",
        ".".join(["abcdefghi"] * 25) + ".com",
        "ex_ample.com",
        "[127.0.0.1]",
        "",
        "example.c",
    ]
    # punycode labels whose unicode form is longer in UTF-8: only the whole address is too long
    cjk = ".".join(["xn--" + ("例" * 25).encode("punycode").decode()] * 3) + ".com"
    return [
        *(f"{local}@{domain}" for local, domain in itertools.product(locals_, domains)),
        *(f"{'x' * n}@{cjk}" for n in (1, 20, 21, 22, 23, 24, 40, 150)),
        *("plain", "@", "a@b@c.com", "ann@example.com>", "<ann@example.com>"),
    ]


@pytest.mark.parametrize("allow_smtputf8", [True, False])
def test_email_shortcut_gives_the_libraries_answer(allow_smtputf8: bool) -> None:
    for text in _email_corpus():
        try:
            expected = (
                True,
                validate_email(
                    text, check_deliverability=False, allow_smtputf8=allow_smtputf8
                ).normalized,
            )
        except EmailNotValidError:
            expected = (False, "")
        ok, result = normalise_email(text, allow_smtputf8=allow_smtputf8)
        assert (ok, result if ok else "") == expected, text


# -- phone ------------------------------------------------------------------------------------

PHONE = {
    "id": "t.phone.format",
    "kind": "phone",
    "field": "phone",
    "default_region": "US",
}
PHONE_OUT = ("phone_e164", "phone_display", "country")

PHONE_PASSES = [
    # (phone, country, e164, display)
    ("(415) 555-0123", "US", "+14155550123", "+1-415-555-0123"),
    ("+1 415 555 0123", None, "+14155550123", "+1-415-555-0123"),
    ("4155550123", "USA", "+14155550123", "+1-415-555-0123"),
    ("415.555.0123", "United States", "+14155550123", "+1-415-555-0123"),
    ("1-415-555-0123", "us", "+14155550123", "+1-415-555-0123"),
    ("+1 (212) 555-0199", "Germany", "+12125550199", "+1-212-555-0199"),  # +1 wins over country
    ("(604) 555-0123", "CA", "+16045550123", "+1-604-555-0123"),  # Canada is NANP
    ("(604) 555-0123", "US", "+16045550123", "+1-604-555-0123"),  # a Canadian number in a US row
    ("(415 555-0123", "US", "+14155550123", "+1-415-555-0123"),  # sloppy, still a number
    ("415-555-0123 x12", "US", "+14155550123", "+1-415-555-0123"),  # extension dropped
    ("+44 20 7946 0958", "US", "+442079460958", "+44 20 7946 0958"),
    ("020 7946 0958", "United Kingdom", "+442079460958", "+44 20 7946 0958"),
    ("020 7946 0958", "UK", "+442079460958", "+44 20 7946 0958"),
    ("030 901820", "Germany", "+4930901820", "+49 30 901820"),
    ("030 901820", "DEU", "+4930901820", "+49 30 901820"),
    ("+33 1 42 68 53 00", None, "+33142685300", "+33 1 42 68 53 00"),
    ("011 44 20 7946 0958", "US", "+442079460958", "+44 20 7946 0958"),  # US exit code
]

PHONE_FAILS = [
    # (phone, country, message)
    ("12345", "US", "phone is not a valid number for region US"),
    ("abc", "US", "phone could not be read as a phone number"),
    ("+1 555", None, "phone is not a valid number for region US"),
    ("(123) 456-7890", "US", "phone is not a valid number for region US"),  # no area code 123
    ("(415) 155-0123", "US", "phone is not a valid number for region US"),  # exchange 1xx
    ("(555) 555-5555", "US", "phone is not a valid number for region US"),
    ("(415) 555-01234", "USA", "phone is not a valid number for region US"),
    ("+44 20 7946", "US", "phone is not a valid number for region GB"),
    ("020 7946", "United Kingdom", "phone is not a valid number for region GB"),
    ("14155550123", "GB", "phone is not a valid number for region GB"),
    ("+999 1234 5678", "US", "phone could not be read as a phone number"),
]


def test_phone_cases_use_numbers_valid_in_the_installed_phonenumbers() -> None:
    for phone, _, e164, _ in PHONE_PASSES:
        assert phonenumbers.is_valid_number(phonenumbers.parse(e164)), (phone, e164)


@pytest.mark.parametrize(("phone", "country", "e164", "display"), PHONE_PASSES)
def test_phone_passes(phone: str, country: str | None, e164: str, display: str) -> None:
    decision = run(one_rule(PHONE, output=PHONE_OUT), {"phone": phone, "country": country})
    assert decision.valid, decision.reasons
    assert decision.record is not None
    assert decision.record["phone_e164"] == e164
    assert decision.record["phone_display"] == display


@pytest.mark.parametrize(("phone", "country", "message"), PHONE_FAILS)
def test_phone_fails(phone: str, country: str | None, message: str) -> None:
    decision = run(one_rule(PHONE, output=PHONE_OUT), {"phone": phone, "country": country})
    assert decision.reasons == (Reason("t.phone.format", "phone", message),)


def test_phone_missing_is_not_this_rules_business() -> None:
    decision = run(one_rule(PHONE, output=PHONE_OUT), {"phone": "  ", "country": "US"})
    assert decision == Decision(
        True, {"phone_e164": None, "phone_display": None, "country": "US"}, ()
    )


def test_phone_outputs_always_derive_from_the_phone() -> None:
    # a re-driven record may carry outputs of an earlier run; without a phone they go
    stale = {"phone": None, "phone_e164": "+14155550123", "phone_display": "+1-415-555-0123"}
    decision = run(one_rule(PHONE, output=PHONE_OUT), stale)
    assert decision.record == {"phone_e164": None, "phone_display": None, "country": None}


def test_phone_default_region_applies_when_the_country_is_unknown() -> None:
    validator = one_rule({**PHONE, "default_region": "GB"}, output=PHONE_OUT)
    for country in (None, "Narnia", "Antarctica"):  # unknown, or known without phone numbers
        decision = run(validator, {"phone": "020 7946 0958", "country": country})
        assert decision.record is not None, country
        assert decision.record["phone_e164"] == "+442079460958"


def test_phone_country_field_can_be_switched_off() -> None:
    validator = one_rule({**PHONE, "country_field": None}, output=PHONE_OUT)
    decision = run(validator, {"phone": "030 901820", "country": "Germany"})
    assert [r.message for r in decision.reasons] == ["phone is not a valid number for region US"]


def test_phone_require_nanp() -> None:
    validator = one_rule({**PHONE, "require_nanp": True}, output=PHONE_OUT)
    assert run(validator, {"phone": "(415) 555-0123", "country": "US"}).valid
    assert run(validator, {"phone": "(604) 555-0123", "country": "Canada"}).valid
    decision = run(validator, {"phone": "+44 20 7946 0958", "country": "UK"})
    assert decision.reasons == (
        Reason("t.phone.format", "phone", "phone is not a North American (+1) number"),
    )


def test_phone_writes_to_the_configured_fields() -> None:
    rule = {**PHONE, "field": "mobile", "e164_field": "mobile_e164", "display_field": "mobile_fmt"}
    decision = run(one_rule(rule, output=("mobile_e164", "mobile_fmt")), {"mobile": "4155550123"})
    assert decision.record == {"mobile_e164": "+14155550123", "mobile_fmt": "+1-415-555-0123"}


def _reference_phone(text: str, region: str) -> tuple[bool, str, str]:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False, "", ""
    if not phonenumbers.is_valid_number(number):
        return False, "", ""
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.country_code == 1:
        n = e164[2:]
        return True, e164, f"+1-{n[:3]}-{n[3:6]}-{n[6:]}"
    intl = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return True, e164, intl


def _phone_corpus() -> list[str]:
    numbers = [
        "4155550123",
        "6045550123",
        "7875550123",
        "2125550199",
        "8005550199",
        "1234567890",
        "4151550123",
        "5555555555",
        "4155550100",
        "9005550199",
    ]
    shapes = [
        "{a}{x}{l}",
        "({a}) {x}-{l}",
        "{a}-{x}-{l}",
        "{a}.{x}.{l}",
        "{a} {x} {l}",
        "1{a}{x}{l}",
        "1-{a}-{x}-{l}",
        "1 ({a}) {x}-{l}",
        "+1{a}{x}{l}",
        "+1 {a} {x} {l}",
        "+1-{a}-{x}-{l}",
        "+1 ({a}) {x}-{l}",
        "+1({a}){x}-{l}",
        "({a}){x}{l}",
        "({a} {x}-{l}",
        "-{a}-{x}-{l}",
        "{a}  {x} {l}",
        "1 {a}{x}{l}",
        "+{a}{x}{l}",
    ]
    corpus = [
        shape.format(a=n[:3], x=n[3:6], l=n[6:]) for n, shape in itertools.product(numbers, shapes)
    ]
    return [*corpus, "1415555012", "14155550123", "141555501234", "415555012", "+1 555"]


@pytest.mark.parametrize("region", ["US", "CA", "PR", "GB", "DE", "JP"])
def test_phone_shortcut_gives_the_libraries_answer(region: str) -> None:
    for text in _phone_corpus():
        ok, e164, display = normalise_phone(text, region)
        assert (ok, e164 if ok else "", display) == _reference_phone(text, region), text


def _world_phone_corpus(region: str, rng: random.Random) -> list[str]:
    """The region's example number of every type, written E.164, international, national
    and RFC 3966, each also with one digit changed, one dropped and one added (mostly
    invalid numbers, some of another type or region), plus random digit strings."""
    corpus: list[str] = []
    for kind in PHONE_TYPES:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        for fmt in PHONE_FORMATS:
            text = phonenumbers.format_number(example, fmt)
            positions = [i for i, c in enumerate(text) if c.isdigit()]
            i = rng.choice(positions)
            corpus += [
                text,
                text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :],
                text[:i] + text[i + 1 :],
                text + str(rng.randrange(10)),
            ]
    for _ in range(10):
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(3, 14)))
        prefix = rng.choice(["", "+", "00", "0"])
        corpus.append(prefix + " ".join([digits[:3], digits[3:6], digits[6:]]).strip())
    return corpus


PHONE_TYPES = sorted({v for k, v in vars(phonenumbers.PhoneNumberType).items() if k.isupper()})
PHONE_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@pytest.mark.parametrize("default_region", ["own", "US", "GB"])
def test_phone_gives_the_libraries_answer_for_every_region(default_region: str) -> None:
    """The compiled validity check and INTERNATIONAL format against phonenumbers' own, for
    every region the library supports, with the number's region and two others as the
    default region."""
    rng = random.Random(7)
    checked = valid = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        default = region if default_region == "own" else default_region
        for text in _world_phone_corpus(region, rng):
            ok, e164, display = normalise_phone(text, default)
            assert (ok, e164 if ok else "", display) == _reference_phone(text, default), (
                text,
                default,
            )
            checked += 1
            valid += ok
    assert checked > 10_000
    assert 0.2 < valid / checked < 0.8  # both answers well represented


@pytest.mark.parametrize("default_region", ["own", "GB"])
def test_phone_replayed_parse_answers_as_the_library_path(
    default_region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers written with digits and separators skip phonenumbers.parse
    (hub.dlp.phone_validity.parse_digits); every answer, the problem's wording included, is
    the one the library's parse leads to."""
    from hub.dlp.phone_validity import parse_digits
    from hub.processors import phones

    rng = random.Random(11)
    texts = [
        (text, region if default_region == "own" else default_region)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for text in _world_phone_corpus(region, rng)
    ]
    texts += [("+39 06 4879 2174", "GB"), ("+44 (0)20 7946 0958", "GB"), ("+999 12 34", "GB")]
    phones.normalise_phone.cache_clear()
    replayed = [normalise_phone(text, region) for text, region in texts]
    covered = sum(parse_digits(text, region) is not None for text, region in texts)
    monkeypatch.setattr(phones, "parse_digits", lambda _text, _region: None)
    phones.normalise_phone.cache_clear()
    try:
        library = [normalise_phone(text, region) for text, region in texts]
    finally:
        phones.normalise_phone.cache_clear()
    assert covered > len(texts) // 2
    for (text, region), got, expected in zip(texts, replayed, library, strict=True):
        assert got == expected, (text, region)
    problems = {answer[1] for answer in library if not answer[0]}
    assert "could not be read as a phone number" in problems
    assert "is not a valid number for region GB" in problems


def test_phone_answers_are_cached_and_stay_the_same() -> None:
    normalise_phone.cache_clear()
    first = [normalise_phone(t, "GB") for t in ("+44 20 7946 0958", "020 7946 0958", "12")]
    assert normalise_phone.cache_info().misses == 3
    again = [normalise_phone(t, "GB") for t in ("+44 20 7946 0958", "020 7946 0958", "12")]
    assert normalise_phone.cache_info().hits == 3
    assert again == first
    assert first[0] == (True, "+442079460958", "+44 20 7946 0958")
    assert first[1] == first[0]
    assert first[2] == (False, "is not a valid number for region GB", "")


# -- date -------------------------------------------------------------------------------------

DATE = {"id": "t.created_on.date", "kind": "date", "field": "created_on"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01", date(2024, 3, 1)),
        (" 2024-02-29 ", date(2024, 2, 29)),
        ("2024-03-01T10:15:00", date(2024, 3, 1)),
        ("2024-03-01 23:59:59+02:00", date(2024, 3, 1)),
        ("20240301", date(2024, 3, 1)),
        (None, None),
    ],
)
def test_date_passes(value: str | None, expected: date | None) -> None:
    decision = run(one_rule(DATE), {"created_on": value})
    assert decision == Decision(True, {"created_on": expected}, ())


@pytest.mark.parametrize("value", ["03/01/2024", "2024-13-01", "2023-02-29", "soon", "2024-3-1"])
def test_date_fails(value: str) -> None:
    decision = run(one_rule(DATE), {"created_on": value})
    assert decision.reasons == (
        Reason(
            "t.created_on.date", "created_on", "created_on is not an ISO-8601 date (YYYY-MM-DD)"
        ),
    )


# -- enum -------------------------------------------------------------------------------------

ENUM = {
    "id": "t.case_status.enum",
    "kind": "enum",
    "field": "case_status",
    "values": ["Open", "In Progress", "Resolved"],
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Open", "Open"),
        ("open", "Open"),
        ("IN PROGRESS", "In Progress"),
        (" resolved ", "Resolved"),
        (None, None),
    ],
)
def test_enum_passes_with_the_canonical_spelling(value: str | None, expected: str | None) -> None:
    assert run(one_rule(ENUM), {"case_status": value}) == Decision(
        True, {"case_status": expected}, ()
    )


@pytest.mark.parametrize("value", ["Closed", "in-progress", "Opened", "Open Resolved"])
def test_enum_fails(value: str) -> None:
    decision = run(one_rule(ENUM), {"case_status": value})
    assert decision.reasons == (
        Reason(
            "t.case_status.enum",
            "case_status",
            "case_status is not one of the allowed values: Open, In Progress, Resolved",
        ),
    )


# -- country ----------------------------------------------------------------------------------

COUNTRY = {"id": "t.country.iso", "kind": "country", "field": "country"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("US", "US"),
        ("us", "US"),
        ("USA", "US"),
        ("U.S.", "US"),
        ("U.S.A.", "US"),
        ("United States", "US"),
        ("united states of america", "US"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("GBR", "GB"),
        ("Great Britain", "GB"),
        ("Germany", "DE"),
        ("DEU", "DE"),
        ("Deutschland", "DE"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d’Ivoire", "CI"),
        ("The Netherlands", "NL"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Saint Barthélemy", "BL"),
        ("Narnia", "Narnia"),
        ("XX", "XX"),
        ("Atlantis Republic", "Atlantis Republic"),
        (None, None),
    ],
)
def test_country_normalises_or_keeps_what_was_entered(
    value: str | None, expected: str | None
) -> None:
    assert run(one_rule(COUNTRY), {"country": value}) == Decision(True, {"country": expected}, ())


def test_country_table_covers_iso_3166() -> None:
    assert len(ISO_ALPHA2) == 249
    no_phone_metadata = {"AQ", "BV", "GS", "HM", "PN", "TF", "UM"}
    assert no_phone_metadata <= ISO_ALPHA2
    assert ISO_ALPHA2 - no_phone_metadata <= set(phonenumbers.SUPPORTED_REGIONS)
    for code in ISO_ALPHA2:
        assert resolve_country(code) == code
        assert resolve_country(code.lower()) == code


# -- reasons never carry the value ----------------------------------------------------------

SECRET = "Zqxv7"  # a marker no message template contains

LEAKS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (MAX_LENGTH, {"company": SECRET * 5}),
    (EMAIL, {"email": f"{SECRET}@{SECRET}"}),
    (EMAIL, {"email": f"{SECRET}.example.com"}),
    (EMAIL, {"email": f"{SECRET}@ex_{SECRET}.com"}),
    (EMAIL, {"email": f"{SECRET}..{SECRET}@example.com"}),
    (EMAIL, {"email": f"{SECRET} <{SECRET}@example.com>"}),
    (EMAIL, {"email": f"{SECRET}@exämple.{SECRET}1"}),
    (EMAIL, {"email": f"{SECRET}@{SECRET}.test"}),
    (EMAIL, {"email": SECRET * 60 + "@example.com"}),
    ({**EMAIL, "allow_smtputf8": False}, {"email": f"{SECRET}ü@example.com"}),
    (PHONE, {"phone": f"{SECRET}-555"}),
    (PHONE, {"phone": "+1 555 0199 777", "country": SECRET}),
    (PHONE, {"phone": "(123) 456-7890", "country": "US"}),
    ({**PHONE, "require_nanp": True}, {"phone": "+44 20 7946 0958"}),
    (DATE, {"created_on": f"{SECRET}-03-01"}),
    (DATE, {"created_on": "2024-13-45"}),
    (ENUM, {"case_status": SECRET}),
]


@pytest.mark.parametrize(("rule", "record"), LEAKS)
def test_reasons_never_contain_the_value(rule: dict[str, Any], record: dict[str, Any]) -> None:
    decision = run(one_rule(rule, output=(rule["field"],)), record)
    assert not decision.valid
    assert decision.reasons
    for reason in decision.reasons:
        assert reason.rule_id == rule["id"]
        assert reason.field == rule["field"]
        value = record[rule["field"]]
        assert value not in reason.message
        assert SECRET.lower() not in reason.message.lower()  # nor any other field's value
        for digits in ("555", "0199", "7946", "0958", "456", "7890", "13-45"):
            if digits in value:
                assert digits not in reason.message


def test_every_rule_kind_has_a_leak_case() -> None:
    kinds = {rule["kind"] for rule, _ in LEAKS}
    assert kinds == {"max_length", "email", "phone", "date", "enum"}  # the kinds with reasons
    assert run(one_rule(COUNTRY), {"country": SECRET}).valid  # country never has one
    assert "last_name" in run(one_rule(REQUIRED), {}).reasons[0].message  # no value to leak


# -- the validator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sales() -> Validator:
    return Validator(load_validation_policy(REPO / "policies" / "validation.yaml"), "sales")


def lead(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "lead_id": "L-0001",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "Ann.Lee@Example.COM",
        "phone": "(415) 555-0123",
        "company": "Acme Inc.",
        "job_title": "VP Sales",
        "country": "USA",
        "lead_source": "web",
        "lead_status": "New",
        "created_on": "2024-03-01",
        "owner": "rep1",
        "notes": "met at the expo\nfollow up in Q3",
    }
    record.update(overrides)
    return record


def test_sales_lead_becomes_a_clean_lead(sales: Validator) -> None:
    [decision] = sales.validate_batch([lead()])
    assert decision == Decision(
        True,
        {
            "lead_id": "L-0001",
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "Ann.Lee@example.com",
            "phone_e164": "+14155550123",
            "phone_display": "+1-415-555-0123",
            "company": "Acme Inc.",
            "job_title": "VP Sales",
            "country": "US",
            "lead_source": "web",
            "lead_status": "New",
            "created_on": date(2024, 3, 1),
            "owner": "rep1",
            "notes": "met at the expo\nfollow up in Q3",
        },
        (),
    )


def test_clean_leads_match_the_lead_schema(sales: Validator) -> None:
    schema = json.loads(LEAD_SCHEMA.read_text())
    parsed = fastavro.parse_schema(schema)
    records = [
        lead(),
        lead(phone="+44 20 7946 0958", country="United Kingdom", email=None, notes=None),
        lead(first_name=None, phone=None, country="Narnia", created_on=None, job_title=""),
    ]
    for decision in sales.validate_batch(records):
        assert decision.valid, decision.reasons
        assert decision.record is not None
        assert list(decision.record) == [f["name"] for f in schema["fields"]]
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, decision.record)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, parsed) == decision.record


def test_every_broken_rule_is_reported_in_policy_order(sales: Validator) -> None:
    bad = lead(
        last_name="  ",
        company="x" * 256,
        email="ann@",
        phone="12345",
        created_on="yesterday",
    )
    [decision] = sales.validate_batch([bad])
    assert not decision.valid
    assert decision.record is None
    assert [(r.rule_id, r.field) for r in decision.reasons] == [
        ("sales.last_name.required", "last_name"),
        ("sales.company.max_length", "company"),
        ("sales.email.format", "email"),
        ("sales.phone.format", "phone"),
        ("sales.created_on.date", "created_on"),
    ]


def test_validate_batch_keeps_order_and_does_not_touch_the_input(sales: Validator) -> None:
    records = [
        lead(lead_id=f"L-{i}", phone="12345" if i % 3 == 0 else "4155550123") for i in range(10)
    ]
    before = [dict(r) for r in records]
    decisions = sales.validate_batch(records)
    assert [d.valid for d in decisions] == [i % 3 != 0 for i in range(10)]
    assert [d.record["lead_id"] for d in decisions if d.record] == [
        f"L-{i}" for i in range(10) if i % 3 != 0
    ]
    assert records == before
    assert sales.validate_batch([]) == []


def test_policy_version_and_department(sales: Validator) -> None:
    policy = load_validation_policy(REPO / "policies" / "validation.yaml")
    assert sales.policy_version == policy.version
    assert sales.department == "sales"


def test_unknown_department_is_a_config_error() -> None:
    policy = load_validation_policy(REPO / "policies" / "validation.yaml")
    known = r"\(known: hr, hr_erasures, marketing, marketing_email_events, sales, service\)"
    with pytest.raises(ConfigError, match=rf"no department 'finance' {known}"):
        Validator(policy, "finance")


def test_reason_and_decision_are_immutable() -> None:
    reason = Reason("a.b", "b", "b is required")
    with pytest.raises(AttributeError):
        reason.message = "changed"  # type: ignore[misc]
    decision = Decision(False, None, (reason,))
    with pytest.raises(AttributeError):
        decision.valid = True  # type: ignore[misc]
