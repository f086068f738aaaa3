"""CREDIT_CARD: payment card numbers (PAN), confirmed by the Luhn checksum and the issuer's
IIN range and length.

Candidates are 13-19 digits, either unbroken or grouped with ONE kind of separator
(all spaces or all dashes) in the layouts cards are printed in: 4-4-4-4(-3), Amex 4-6-5 and
Diners 4-6-4. The regex enforces the consistent separator (no backreferences: each
separator has its own alternative). ``validate`` then checks length, issuer range, Luhn,
and rejects numbers made of one repeated digit.

UnionPay cards outside the Luhn scheme (a minority of 62-series cards) are not found: a
Luhn-less 16-digit number is too easily an order or reference number.
"""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer, digits

# Not inside a longer token (letters, digits, '+', '-', or a decimal like "1.4111…").
_START = r"(?=\d)(?<![\w+\-])(?<!\d[.,])"
_END = r"(?![\w+\-])(?![.,]\d)"


def _grouped(sep: str) -> str:
    return rf"\d{{4}}(?:{sep}\d{{4}}){{3}}(?:{sep}\d{{3}})?|\d{{4}}{sep}\d{{6}}{sep}\d{{4,5}}"


# An unbroken run right after '#' is an order/ticket/invoice id far more often than a card.
_REGEX = _START + r"(?:(?<!#)\d{13,19}|" + _grouped(" ") + "|" + _grouped("-") + ")" + _END

# (first digits low, high, allowed lengths) — prefixes compared on the same number of digits.
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),  # American Express
    ("6011", "6011", frozenset({16, 17, 18, 19})),  # Discover
    ("644", "649", frozenset({16, 17, 18, 19})),  # Discover
    ("65", "65", frozenset({16, 17, 18, 19})),  # Discover
    ("622126", "622925", frozenset({16, 17, 18, 19})),  # Discover / UnionPay co-brand
    ("3528", "3589", frozenset({16, 17, 18, 19})),  # JCB
    ("300", "305", frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club International
    ("3095", "3095", frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club International
    ("36", "36", frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club International
    ("38", "39", frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    ("62", "62", frozenset({16, 17, 18, 19})),  # UnionPay
)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def issuer_ok(number: str) -> bool:
    n = len(number)
    return any(
        n in lengths and low <= number[: len(low)] <= high for low, high, lengths in _ISSUERS
    )


class CreditCardRecognizer(Recognizer):
    entity = "CREDIT_CARD"
    name = "credit_card"
    patterns = (Pattern("card_number", _REGEX, 0.3),)
    context = (
        "card",
        "cards",
        "credit",
        "debit",
        "cc",
        "ccn",
        "pan",
        "visa",
        "mastercard",
        "amex",
        "discover",
        "jcb",
        "diners",
        "unionpay",
        "payment",
    )
    field_names = ("cardnumber", "creditcard", "creditcardnumber", "ccnumber", "ccn", "pan")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        number = digits(candidate)
        if number == number[0] * len(number):
            return None
        if not issuer_ok(number) or not luhn_ok(number):
            return None
        return self.validated_score
