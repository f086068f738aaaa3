"""AWS access key id: a four-letter prefix (AKIA long-term, ASIA temporary STS, ABIA, ACCA)
and 16 upper-case letters and digits. The prefix makes the shape specific; ``validate``
drops the documentation example (…EXAMPLE) and placeholders with hardly any distinct
characters."""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer

_MIN_DISTINCT = 6


class AwsAccessKeyRecognizer(Recognizer):
    entity = "AWS_ACCESS_KEY"
    name = "aws_access_key"
    patterns = (
        Pattern(
            "access key id",
            # The left boundary is a lookbehind after the literal prefix, so the regex engine can
            # skip ahead to an "A".
            r"A(?:KIA|SIA|BIA|CCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
            0.9,
        ),
    )
    context = ("aws", "accesskeyid", "access key", "access key id", "awsaccesskeyid")
    field_names = ("awsaccesskeyid", "accesskeyid", "awsaccesskey", "accesskey")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        body = candidate[4:]
        if "EXAMPLE" in body or len(set(body)) < _MIN_DISTINCT:
            return None
        return pattern.score
