"""EMAIL_ADDRESS: e-mail addresses, confirmed by email-validator's syntax rules (RFC 5322 /
6531 as that library applies them) with no DNS or other network look-up.

The candidate regex is deliberately tight and linear: a local part that starts and ends with
an alphanumeric (or ``_%+-``), an ``@``, one or more host labels and an alphabetic top-level
label. ASCII only. ``validate`` runs email-validator (``check_deliverability=False``), which
also rejects special-use domains (``.local``, ``.test``, …), and rejects "TLDs" that are
image or file extensions (``icon@2x.png``).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from hub.dlp.base import Pattern, Recognizer

_LOCAL = r"[A-Za-z0-9_%+\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_REGEX = r"(?<![\w.%+\-])" + _LOCAL + "@" + rf"(?:{_LABEL}\.){{1,8}}" + r"[A-Za-z]{2,24}(?![\w\-@])"

_FILE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "css", "js"}
)


class EmailRecognizer(Recognizer):
    entity = "EMAIL_ADDRESS"
    name = "email"
    patterns = (Pattern("email", _REGEX, 0.5),)
    context = ("email", "mail", "contact")
    field_names = ("email", "emailaddress", "mail", "emailaddr")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if candidate.rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS:
            return None
        try:
            validate_email(candidate, check_deliverability=False)
        except EmailNotValidError:
            return None
        return self.validated_score
