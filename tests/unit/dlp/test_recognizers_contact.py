"""E-mail, phone and IP address recognizers: must-match and must-not-match tables, scanned
with the reference scan at the usual 0.5 threshold."""

from __future__ import annotations

import pytest

from hub.dlp.recognizers.email import EmailRecognizer
from hub.dlp.recognizers.ip_address import IpAddressRecognizer
from hub.dlp.recognizers.phone import PhoneRecognizer
from tests.unit.dlp.scan_helpers import COMMON_HARD_NEGATIVES
from tests.unit.dlp.scan_helpers import spans as found

HARD_NEGATIVES = COMMON_HARD_NEGATIVES

# -- e-mail --------------------------------------------------------------------------------

EMAIL = EmailRecognizer()

EMAIL_MATCH = [
    ("mail john.doe@example.com.", "john.doe@example.com", 1.0),
    ("<first.last+tag@sub.example.co.uk>", "first.last+tag@sub.example.co.uk", 1.0),
    ("from: a_b-c%d@my-host.io, cc", "a_b-c%d@my-host.io", 1.0),
    ("JANE@EXAMPLE.ORG wrote", "JANE@EXAMPLE.ORG", 1.0),
]

EMAIL_NOT_MATCH = [
    *HARD_NEGATIVES,
    "retina icon@2x.png",  # a file name
    "user@localhost",  # no dot in the domain
    "a@b.c",  # one-letter TLD
    "john..doe@example.com",  # two dots in a row
    "x@foo.test",  # special-use domain
    "x@foo.local",
    "@example.com",
    "user@.com",
    "user@-example.com",
    "user@example.c0m",  # TLD with a digit
    "see example.com or @handle",
]


@pytest.mark.parametrize(("text", "expected", "min_score"), EMAIL_MATCH)
def test_email_matches(text: str, expected: str, min_score: float) -> None:
    assert found(EMAIL, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", EMAIL_NOT_MATCH)
def test_email_does_not_match(text: str) -> None:
    assert found(EMAIL, text) == {}


# -- phone ---------------------------------------------------------------------------------

PHONE = PhoneRecognizer()

PHONE_MATCH = [
    ("+1 415-555-2671", "+1 415-555-2671", 0.7),
    ("(415) 555-2671", "(415) 555-2671", 0.55),
    ("office 415.555.2671", "415.555.2671", 0.55),
    ("Call 415-555-2671 2 times", "415-555-2671", 0.9),
    ("toll free 1-800-555-0199", "1-800-555-0199", 0.55),
    ("tel 4155552671", "4155552671", 0.65),  # plain digits: context lifts it
    ("+44 20 7946 0958", "+44 20 7946 0958", 0.7),
    ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958", 0.7),
    ("London 020 7946 0958", "020 7946 0958", 0.55),
    ("mobile 07911 123456", "07911 123456", 0.9),
    ("+49 30 901820", "+49 30 901820", 0.7),
    ("Berlin 030 901820", "030 901820", 0.55),
    ("+4915112345678", "+4915112345678", 0.7),
    ("00 44 20 7946 0958", "00 44 20 7946 0958", 0.6),
    ("portable 06 12 34 56 78", "06 12 34 56 78", 0.55),
    ("+33 1 42 68 53 00", "+33 1 42 68 53 00", 0.7),
    ("Madrid 912 34 56 78", "912 34 56 78", 0.55),
    ("+91 98765 43210", "+91 98765 43210", 0.7),
    ("kantoor 020-123 4567", "020-123 4567", 0.55),
]

PHONE_NOT_MATCH = [
    *HARD_NEGATIVES,
    "4155552671",  # plain digits without context stay below the threshold
    "card 4111 1111 1111 1111",
    "amex 3782 822463 10005",
    "due 05.03.2024",
    "on 2024-03-05",
    "ssn 536-22-1234",
    "host 192.168.100.200",
    "pi 3.14159265",
    "total 1.234.567",
    "ISBN 0-306-40615-2",
    "1 2 3 4 5 6 7 8",
    "count 1 234 567",
    "+1 555",  # too short
    "+999 1234 5678",  # no such country code
    "call 111-222-3333",  # not a valid US number
    "ref 536 221 234",  # "valid" in DE/FR/NL only if the trunk 0 is ignored
    "ISBN 0-631-70669-0",  # an ISBN-10 that libphonenumber would take for a DE number
    "ref 0415 8683449786",  # 14 national digits: too long, though DE metadata accepts it
    "called about 3904377230959",  # 13 unbroken digits: IT metadata takes it, people would not
    "called about 116066316045",  # 12 unbroken digits without a trunk 0
]


@pytest.mark.parametrize(("text", "expected", "min_score"), PHONE_MATCH)
def test_phone_matches(text: str, expected: str, min_score: float) -> None:
    assert found(PHONE, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", PHONE_NOT_MATCH)
def test_phone_does_not_match(text: str) -> None:
    assert found(PHONE, text) == {}


@pytest.mark.parametrize(
    ("field", "is_found"),
    [("mobile_phone", True), ("contact.telephone", True), ("hotel", False), ("order_id", False)],
)
def test_phone_field_context(field: str, is_found: bool) -> None:
    assert bool(found(PHONE, "4155552671", field=field)) is is_found


# -- IP address ----------------------------------------------------------------------------

IP = IpAddressRecognizer()

IP_MATCH = [
    ("client 192.168.1.10 connected", "192.168.1.10", 0.9),
    ("10.0.0.1:8080", "10.0.0.1", 0.6),
    ("http://8.8.8.8/dns", "8.8.8.8", 0.6),
    ("host:255.255.255.0", "255.255.255.0", 0.6),
    ("end of sentence 172.16.0.5.", "172.16.0.5", 0.6),
    ("2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334", 0.7),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", 0.7),
    ("mapped ::ffff:192.168.1.1", "::ffff:192.168.1.1", 0.7),
    ("link-local fe80::1 on eth0", "fe80::1", 0.7),
    ("[2001:db8::1]:443", "2001:db8::1", 0.7),
]

IP_NOT_MATCH = [
    *HARD_NEGATIVES,
    "version 1.2.3.4",  # version context is a negative
    "Version: 1.2.3.4",
    "VERSION=1.2.3.4",
    "release 10.0.1.2",
    "see section 4.2.1.3",
    "v1.2.3.4",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.02.03.04",
    "1.2.3",
    "at 14:22:01",
    "mac 00:1A:2B:3C:4D:5E",
    "std::vector",
    "a :: b",
    "loopback ::1",  # a lone group is not reported
    "12:34::56:78:9a:bc:de:f0:11",  # too many groups
]


@pytest.mark.parametrize(("text", "expected", "min_score"), IP_MATCH)
def test_ip_matches(text: str, expected: str, min_score: float) -> None:
    assert found(IP, text).get(expected, 0.0) >= min_score


@pytest.mark.parametrize("text", IP_NOT_MATCH)
def test_ip_does_not_match(text: str) -> None:
    assert found(IP, text) == {}


def test_ipv6_with_ipv4_tail_is_one_finding() -> None:
    assert list(found(IP, "::ffff:192.168.1.1")) == ["::ffff:192.168.1.1"]
