"""Table-driven tests for the secret recognizers.

Every token here is synthetic and is assembled at run time (prefix + body), so this file
does not itself contain strings that secret scanners (or push protection) would flag."""

from __future__ import annotations

import base64
import json
import string
import zlib

import pytest

from hub.dlp.base import Recognizer, scan_reference
from hub.dlp.recognizers.aws_access_key import AwsAccessKeyRecognizer
from hub.dlp.recognizers.aws_secret_key import AwsSecretKeyRecognizer
from hub.dlp.recognizers.github_token import GithubTokenRecognizer
from hub.dlp.recognizers.jwt import JwtRecognizer
from hub.dlp.recognizers.private_key import PrivateKeyRecognizer
from hub.dlp.recognizers.slack_token import SlackTokenRecognizer
from hub.dlp.recognizers.stripe_key import StripeKeyRecognizer
from tests.unit.dlp.scan_helpers import THRESHOLD, nothing
from tests.unit.dlp.scan_helpers import reports as found

GIT_SHA = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
UUID = "550e8400-e29b-41d4-a716-446655440000"
GENERIC_NOT = [GIT_SHA, UUID, "v2.14.3", "2024-03-05 14:22:01", "ts 1709648521000", "94105-1234"]


def _b62(value: int) -> str:
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    chars = []
    while value:
        chars.append(alphabet[value % 62])
        value //= 62
    return "".join(reversed(chars)).zfill(6)


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# -- AWS access key id ----------------------------------------------------------------------
AKID = "AKIA" + "Z3MSJV4WWNKWW5FG"
ASID = "ASIA" + "QX7RT2LMNB4KZP6W"
AKID_MATCH = [
    (f"aws_access_key_id = {AKID}", AKID, 0.9),
    (f'"AccessKeyId": "{ASID}"', ASID, 0.9),
    (f"key={AKID}&x", AKID, 0.9),
]
AKID_NOT = [
    *GENERIC_NOT,
    "AKIA" + "IOSFODNN7EXAMPLE",  # the documentation example
    "AKIA" + "AAAAAAAAAAAAAAAA",  # placeholder
    "AKIA" + "Z3MSJV4WWNKWW5F",  # 15 characters
    "AKIA" + "Z3MSJV4WWNKWW5FGX",  # 17 characters
    "AKIA" + "z3msjv4wwnkww5fg",  # lower case
    "XAKIA" + "Z3MSJV4WWNKWW5FG",
    "BKIA" + "Z3MSJV4WWNKWW5FG",
]

# -- AWS secret access key ------------------------------------------------------------------
SECRET = "9f8Jq2Lr7Xv0pZ4sWm1Nb6Tc3Hy5Ke8Ug0Da2Qo/"
SECRET_MATCH = [
    (f"aws_secret_access_key = {SECRET}", SECRET, 0.7),
    (f'{{"SecretAccessKey": "{SECRET}"}}', SECRET, 0.7),
    (f"AWS secret access key: {SECRET}", SECRET, 0.7),
]
SECRET_NOT = [
    *GENERIC_NOT,
    SECRET,  # no context
    f"aws commit {GIT_SHA}",  # hex only
    "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
    "aws_secret_access_key = " + "A" * 20 + "b" * 19 + "1",  # low entropy
    "aws_secret_access_key = " + "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",  # letters only
    f"aws_secret_access_key = {SECRET}x",  # 41 characters
    f"aws {UUID}",
]

# -- GitHub ---------------------------------------------------------------------------------
GH_RANDOM = "Xk3Pq9Lm2Zr7Tn4Vb8Wc1Yd5Hf6Js0Ga"[:30]
GHP = "gh" + "p_" + GH_RANDOM + _b62(zlib.crc32(GH_RANDOM.encode()))
GHS_BAD_CRC = "gh" + "s_" + GH_RANDOM + "AAAAAA"
GH_FINE = "github" + "_pat_" + "11ABCDEFG0a1b2c3d4e5f6" + "_" + ("Qw3Er5Ty7Ui9Op1As" * 4)[:59]
GH_MATCH = [
    (f"GITHUB_TOKEN={GHP}", GHP, 1.0),
    (f"token: {GHS_BAD_CRC}", GHS_BAD_CRC, 0.85),
    (f"Authorization: token {GH_FINE}", GH_FINE, 0.85),
]
GH_NOT = [
    *GENERIC_NOT,
    "gh" + "p_" + "x" * 36,  # placeholder
    GHP[:-1],  # 35 characters
    GHP + "Z",  # 37 characters
    "gh" + "x_" + GHP[4:],  # unknown prefix
    "my_" + GHP,  # glued to a word
]


def test_github_checksum_decides_between_validated_and_shape_only() -> None:
    (good,) = scan_reference(GithubTokenRecognizer(), GHP)
    (bad,) = scan_reference(GithubTokenRecognizer(), GHS_BAD_CRC)
    assert good.validated
    assert not bad.validated


# -- Slack ----------------------------------------------------------------------------------
XOXB = "xo" + "xb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
XOXP = "xo" + "xp-" + "1234567890-1234567890-1234567890-" + "0123456789abcdef0123456789abcdef"
XAPP = "xa" + "pp-1-A0123BCDE45-1234567890123-" + "0123456789abcdef" * 4
HOOK = "https://hooks" + ".slack.com/services/T01ABCDE2/B03FGHIJ4/" + "aB1cD2eF3gH4iJ5kL6mN7oP8"
SLACK_MATCH = [
    (f"SLACK_BOT_TOKEN={XOXB}", XOXB, 0.9),
    (f"token {XOXP}.", XOXP, 0.9),
    (f"app token {XAPP}", XAPP, 0.9),
    (f"webhook: {HOOK}", HOOK[len("https://") :], 0.9),
]
SLACK_NOT = [
    *GENERIC_NOT,
    "xo" + "xb-123-XXXXXXXXXXXXXXXX",  # placeholder
    "xo" + "xb-",
    "xo" + "xq-123456789012-AbCdEfGhIjKl",  # unknown type letter
    "https://hooks" + ".slack.com/services/T01ABCDE2/B03FGHIJ4/short",
]

# -- Stripe ---------------------------------------------------------------------------------
SK_BODY = "4eC39HqLyjWDarjtT1zdp7dc"
SK_LIVE = "sk" + "_live_" + SK_BODY
RK_LIVE = "rk" + "_live_" + SK_BODY + "Zx9"
WHSEC = "wh" + "sec_" + "Fk2Lm9Qp3Rs8Tu4Vw7Xy1Za6Bc5De0Gh"
STRIPE_MATCH = [
    (f"STRIPE_SECRET_KEY={SK_LIVE}", SK_LIVE, 0.95),
    (f"key: {RK_LIVE}", RK_LIVE, 0.95),
    (f"endpoint secret {WHSEC}", WHSEC, 0.8),
]
STRIPE_NOT = [
    *GENERIC_NOT,
    "sk" + "_test_" + SK_BODY,  # test mode: below the default threshold
    "pk" + "_live_" + SK_BODY,  # publishable: public by design
    "sk" + "_live_" + "x" * 24,  # placeholder
    "sk" + "_live_" + SK_BODY[:20],  # too short
    "ask" + "_live_" + SK_BODY,
]


def test_stripe_test_key_is_reported_below_threshold() -> None:
    (finding,) = scan_reference(StripeKeyRecognizer(), "sk" + "_test_" + SK_BODY)
    assert 0 < finding.score < THRESHOLD


# -- private key blocks ---------------------------------------------------------------------
_BODY = base64.encodebytes(bytes(range(256)) * 2).decode()  # not a key: a byte ramp
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + _BODY + "-----END RSA PRIVATE KEY-----"
PKCS8_JSON = (
    "-----BEGIN " + "PRIVATE KEY-----\\n" + _BODY.replace("\n", "\\n") + "-----END PRIVATE KEY-----"
)
OPENSSH = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\r\n" + _BODY + "-----END OPENSSH PRIVATE KEY-----"
)
ENCRYPTED = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
    "DEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\n"
    + _BODY
    + "-----END RSA PRIVATE KEY-----"
)
PEM_MATCH = [
    (f"key:\n{PEM}\nrest", PEM, 1.0),
    (f'{{"private_key": "{PKCS8_JSON}\\n"}}', PKCS8_JSON, 1.0),
    (OPENSSH, OPENSSH, 1.0),
    (ENCRYPTED, ENCRYPTED, 1.0),
]
PEM_NOT = [
    *GENERIC_NOT,
    "-----BEGIN " + "RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",  # placeholder
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN " + "RSA PRIVATE KEY-----\n" + _BODY + "-----END EC PRIVATE KEY-----",
    "-----BEGIN " + "PUBLIC KEY-----\n" + _BODY + "-----END PUBLIC KEY-----",
    "-----BEGIN " + "CERTIFICATE-----\n" + _BODY + "-----END CERTIFICATE-----",
    # body longer than the 8,000-character bound
    "-----BEGIN " + "RSA PRIVATE KEY-----\n" + _BODY * 13 + "-----END RSA PRIVATE KEY-----",
]

# -- JWT ------------------------------------------------------------------------------------
_HEADER = _b64url({"alg": "HS256", "typ": "JWT"})
_PAYLOAD = _b64url({"sub": "user-42", "iat": 1709648521})
JWT = f"{_HEADER}.{_PAYLOAD}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
JWT_UNSIGNED = f"{_b64url({'alg': 'none'})}.{_PAYLOAD}."
JWT_MATCH = [
    (f"Authorization: Bearer {JWT}", JWT, 1.0),
    (f'{{"id_token":"{JWT}"}}', JWT, 1.0),
    (f"t={JWT_UNSIGNED} end", JWT_UNSIGNED, 1.0),
]
JWT_NOT = [
    *GENERIC_NOT,
    f"{_b64url({'typ': 'JWT'})}.{_PAYLOAD}.sig0123456789",  # no alg
    f"{_HEADER}.{_b64url({'a': 1})[:-3]}xyz.sig0123456789",  # payload not JSON
    f"{_HEADER}",  # one segment
    f"{_HEADER}.{_PAYLOAD}",  # two segments
    f"{JWT}.extra",  # five-part JWE-like runs are not this shape
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.Zm9v".replace("eyJ", "eyK"),
]


RECOGNIZERS: dict[str, Recognizer] = {
    "aws_access_key": AwsAccessKeyRecognizer(),
    "aws_secret_key": AwsSecretKeyRecognizer(),
    "github_token": GithubTokenRecognizer(),
    "slack_token": SlackTokenRecognizer(),
    "stripe_key": StripeKeyRecognizer(),
    "private_key": PrivateKeyRecognizer(),
    "jwt": JwtRecognizer(),
}
MATCH = [
    *(("aws_access_key", *row) for row in AKID_MATCH),
    *(("aws_secret_key", *row) for row in SECRET_MATCH),
    *(("github_token", *row) for row in GH_MATCH),
    *(("slack_token", *row) for row in SLACK_MATCH),
    *(("stripe_key", *row) for row in STRIPE_MATCH),
    *(("private_key", *row) for row in PEM_MATCH),
    *(("jwt", *row) for row in JWT_MATCH),
]
NOT = [
    *(("aws_access_key", text) for text in AKID_NOT),
    *(("aws_secret_key", text) for text in SECRET_NOT),
    *(("github_token", text) for text in GH_NOT),
    *(("slack_token", text) for text in SLACK_NOT),
    *(("stripe_key", text) for text in STRIPE_NOT),
    *(("private_key", text) for text in PEM_NOT),
    *(("jwt", text) for text in JWT_NOT),
]


@pytest.mark.parametrize(("recognizer", "text", "expected", "min_score"), MATCH)
def test_secret_matches(recognizer: str, text: str, expected: str, min_score: float) -> None:
    assert found(RECOGNIZERS[recognizer], text, expected, min_score)


@pytest.mark.parametrize(("recognizer", "text"), NOT)
def test_secret_does_not_match(recognizer: str, text: str) -> None:
    assert nothing(RECOGNIZERS[recognizer], text)


def test_aws_secret_found_by_field_name_alone() -> None:
    rec = AwsSecretKeyRecognizer()
    assert found(rec, SECRET, SECRET, 0.7, field="credentials.aws_secret_access_key")
    assert nothing(rec, SECRET, field="commit")
