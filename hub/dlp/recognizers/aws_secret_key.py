"""AWS secret access key: 40 base64 characters with no marker of their own, so the
recognizer is context-gated ("aws", "secret access key", ``SecretAccessKey`` keys) and
``validate`` wants what a random key has: upper- and lower-case letters and digits, not
hex only (a git SHA-1 is 40 hex characters), enough entropy, and not the documentation
example.

The base tokenises context on ``[a-z0-9]+``, so ``aws_secret_access_key`` yields the tokens
"aws", "secret", "access", "key": the context word is "aws" rather than "aws_secret"."""

from __future__ import annotations

import math
from collections import Counter

from hub.dlp.base import Pattern, Recognizer

_MIN_ENTROPY = 4.0  # bits per character; random base64 over 40 characters is ~4.9
_HEX = frozenset("0123456789abcdefABCDEF")


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


class AwsSecretKeyRecognizer(Recognizer):
    entity = "AWS_SECRET_KEY"
    name = "aws_secret_key"
    patterns = (
        Pattern(
            "secret access key",
            # Leads with a consuming class (fast skip) and checks the left boundary behind it;
            # the bounded lookahead drops hex-only runs (git SHA-1s) before validate().
            r"[A-Za-z0-9/+](?<![A-Za-z0-9/+=].)(?=[0-9a-fA-F]{0,39}[g-zG-Z/+])"
            r"[A-Za-z0-9/+]{39}(?![A-Za-z0-9/+=])",
            0.4,
        ),
    )
    context = (
        "aws",
        "awssecretaccesskey",
        "secretaccesskey",
        "aws secret",
        "secret access key",
    )
    context_required = True
    field_names = ("awssecretaccesskey", "secretaccesskey", "awssecretkey", "awssecret")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        if "EXAMPLE" in candidate or set(candidate) <= _HEX:
            return None
        has_upper = any(c.isupper() for c in candidate)
        has_lower = any(c.islower() for c in candidate)
        has_digit = any(c.isdigit() for c in candidate)
        if not (has_upper and has_lower and has_digit):
            return None
        if shannon_entropy(candidate) < _MIN_ENTROPY:
            return None
        return pattern.score
