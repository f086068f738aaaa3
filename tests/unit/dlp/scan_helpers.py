"""Shared helpers of the recognizer tables: scan one recognizer the reference way and ask
what it reported at the reporting threshold."""

from __future__ import annotations

import importlib

from hub.dlp.base import Recognizer, scan_reference

THRESHOLD = 0.5

# Shapes that look like identifiers but are not; every recognizer table refuses them.
COMMON_HARD_NEGATIVES = [
    "Order #4111111111111112 shipped",
    "logged at 2024-03-05 14:22:01 UTC",
    "epoch millis 1709650000000",
    "upgraded to v2.14.3 today",
    "build 1.2.3.4-beta is out",
    "ZIP 94105-1234",
    "ISBN 978-3-16-148410-0",
    "Invoice INV-2024-000123 paid",
    "request 123e4567-e89b-12d3-a456-426614174000 failed",
]


def spans(recognizer: Recognizer, text: str, *, field: str | None = None) -> dict[str, float]:
    """Matched text -> score of every finding at or above the threshold."""
    return {
        text[f.start : f.end]: f.score
        for f in scan_reference(recognizer, text, field=field, min_score=THRESHOLD)
    }


def reports(
    recognizer: Recognizer, text: str, expected: str, min_score: float, field: str | None = None
) -> bool:
    """Whether `expected` is reported with at least `min_score`."""
    return any(
        text[f.start : f.end] == expected and f.score >= min_score
        for f in scan_reference(recognizer, text, field=field, min_score=THRESHOLD)
    )


def nothing(recognizer: Recognizer, text: str, field: str | None = None) -> bool:
    """Whether nothing at all is reported at the threshold."""
    return not list(scan_reference(recognizer, text, field=field, min_score=THRESHOLD))


_TABLES = ("contact", "financial", "health", "identity", "national_ids", "secrets")


def table_texts() -> list[str]:
    """Every text of the recognizer tables (``test_recognizers_*.py``: the first item of
    each row of their upper-case lists), for scanning them all with the engine."""
    texts: set[str] = set()
    for name in _TABLES:
        module = importlib.import_module(f"tests.unit.dlp.test_recognizers_{name}")
        for attr, value in vars(module).items():
            if not (attr.isupper() and isinstance(value, list)):
                continue
            for row in value:
                if isinstance(row, str):
                    texts.add(row)
                elif isinstance(row, tuple) and row and isinstance(row[0], str):
                    texts.add(row[0])
    return sorted(texts)
