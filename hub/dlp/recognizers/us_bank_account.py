"""US_BANK_NUMBER: US bank account numbers — 8 to 17 digits, the range US banks issue.

There is no checksum and no issuer structure, and an 8-17 digit run is as likely an order
id or a timestamp, so the recognizer is context-gated: an account word nearby (or an
account field name) is required. ``validate`` drops one digit repeated throughout and
eight-digit runs that are calendar dates (YYYYMMDD). Note that in a CRM "account" also
means a customer account: a context-confirmed finding is still only 0.65.
"""

from __future__ import annotations

from datetime import date

from hub.dlp.base import Pattern, Recognizer

_START = r"(?=\d)(?<![\w\-])(?<!\d[.,/])"
_END = r"(?![\w\-])(?![.,/]\d)"


def _is_yyyymmdd(number: str) -> bool:
    if len(number) != 8 or number[:2] not in ("19", "20"):
        return False
    try:
        date(int(number[:4]), int(number[4:6]), int(number[6:]))
    except ValueError:
        return False
    return True


class UsBankAccountRecognizer(Recognizer):
    entity = "US_BANK_NUMBER"
    name = "us_bank_account"
    patterns = (Pattern("bank_account_digits", _START + r"\d{8,17}" + _END, 0.3),)
    context = ("account", "acct", "checking", "savings", "bank", "dda", "deposit")
    context_required = True
    field_names = (
        "bankaccount",
        "bankaccountnumber",
        "bankaccountno",
        "accountnumber",
        "accountno",
        "acctnumber",
        "acctno",
        "checkingaccount",
        "savingsaccount",
        "dda",
    )

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if candidate == candidate[0] * len(candidate) or _is_yyyymmdd(candidate):
            return None
        return pattern.score
