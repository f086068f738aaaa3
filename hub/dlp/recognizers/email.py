"""EMAIL_ADDRESS: e-mail addresses, confirmed by email-validator's syntax rules (RFC 5322 /
6531 as that library applies them) with no DNS or other network look-up.

The candidate regex is deliberately tight and linear: a local part that starts and ends with
an alphanumeric (or ``_%+-``), an ``@``, one or more host labels and an alphabetic top-level
label. ASCII only. ``validate`` runs email-validator (``check_deliverability=False``), which
also rejects special-use domains (``.local``, ``.test``, …), and rejects "TLDs" that are
image or file extensions (``icon@2x.png``).

email-validator costs ~25 µs an address (Unicode and IDNA machinery an ASCII address does
not need), so a candidate of the pattern that is *plainly* valid — no ``..`` in the local
part, no ``--`` in the domain (so no Punycode and no reserved ``ab--`` label), within the
length limits and not under a special-use domain — is accepted without it: the pattern
already enforces the rest of what email-validator checks. Anything else goes to
email-validator (``tests/unit/dlp/test_recognizers_contact.py`` checks both agree).
"""

from __future__ import annotations

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import DOMAIN_MAX_LENGTH, EMAIL_MAX_LENGTH

from hub.dlp.base import Pattern, Recognizer

_LOCAL = r"[A-Za-z0-9_%+\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_REGEX = r"(?<![\w.%+\-])" + _LOCAL + "@" + rf"(?:{_LABEL}\.){{1,8}}" + r"[A-Za-z]{2,24}(?![\w\-@])"

# For multi-pattern matchers: the same shape without the length limits (a superset).
_PREFILTER = (
    r"(?<![\w.%+\-])[A-Za-z0-9_%+\-][A-Za-z0-9._%+\-]*@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z]{2,}"
    r"(?![\w\-@])"
)

_FILE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "css", "js"}
)


_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple("." + name for name in _SPECIAL_USE)


def plainly_valid(candidate: str) -> bool:
    """Whether a candidate of the pattern is certainly an address email-validator accepts
    (False: ask email-validator)."""
    local, _, domain = candidate.partition("@")
    if (
        len(candidate) > EMAIL_MAX_LENGTH
        or len(domain) > DOMAIN_MAX_LENGTH
        or ".." in local
        or "--" in domain
        or not candidate.isascii()
    ):
        return False
    lowered = domain.lower()
    return lowered not in _SPECIAL_USE and not lowered.endswith(_SPECIAL_USE_SUFFIXES)


class EmailRecognizer(Recognizer):
    entity = "EMAIL_ADDRESS"
    name = "email"
    patterns = (Pattern("email", _REGEX, 0.5, prefilter=_PREFILTER),)
    context = ("email", "mail", "contact")
    field_names = ("email", "emailaddress", "mail", "emailaddr")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if candidate.rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS:
            return None
        if plainly_valid(candidate):
            return self.validated_score
        try:
            validate_email(candidate, check_deliverability=False)
        except EmailNotValidError:
            return None
        return self.validated_score
