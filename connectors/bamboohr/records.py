"""Shaping minimised HR values into the Avro schemas' fields, shared by both HR connectors.

Values come in as what the source sent for the allowed fields (text, numbers, ``null``) and
go out as the schema's strings: blank -> null, BambooHR's empty date ``0000-00-00`` -> null,
dates as ``YYYY-MM-DD``. A value that cannot be shaped (a date that is not a date, a nested
object where text belongs) is a quarantine reason naming the field and the rule, never the
value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from connectors.bamboohr.policy import StreamPolicy
from hub.quarantine import QuarantineReason
from hub.serde import load_schema_text, schema_path
from hub.settings import REPO_ROOT

__all__ = [
    "EMPLOYEE_EVENT_TYPE",
    "ERASURE_EVENT_TYPE",
    "SCHEMAS_DIR",
    "schema_fields",
    "shape",
]

EMPLOYEE_EVENT_TYPE = "crm.hr.employee.changed.v1"
ERASURE_EVENT_TYPE = "crm.hr.employee.erased.v1"
SCHEMAS_DIR = REPO_ROOT / "schemas"
EMPTY_DATES = frozenset({"", "0000-00-00"})


@cache
def schema_fields(name: str, schemas_dir: Path = SCHEMAS_DIR) -> tuple[str, ...]:
    """The field names of ``schemas/<name>.avsc``, in schema order."""
    schema = json.loads(load_schema_text(schema_path(schemas_dir, name)))
    return tuple(str(f["name"]) for f in schema["fields"])


def _iso_date(text: str) -> str | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def shape(
    minimised: Mapping[str, Any], rules: StreamPolicy, metadata: Mapping[str, Any]
) -> tuple[dict[str, Any], list[QuarantineReason]]:
    """Every field of the stream's schema: ``metadata`` (filled by the connector), the
    allowed fields as text (or null), null for the rest; and the reasons it cannot be
    published, if any."""
    out: dict[str, Any] = dict.fromkeys(schema_fields(rules.schema_name))
    reasons: list[QuarantineReason] = []
    dates = rules.date_fields
    for name, raw in minimised.items():
        if type(raw) is str:  # the usual case first: this runs once per field and record
            text = raw.strip() or None
        elif raw is None or isinstance(raw, bool):
            text = None if raw is None else ("true" if raw else "false")
        elif isinstance(raw, (int, float)):
            text = str(raw)
        else:
            reasons.append(QuarantineReason("hr.type", name, f"{name} is not a text value"))
            continue
        if name in dates and text is not None:
            if text in EMPTY_DATES:
                text = None
            else:
                iso = _iso_date(text)
                if iso is None:
                    reasons.append(
                        QuarantineReason("hr.date", name, f"{name} is not a date (YYYY-MM-DD)")
                    )
                    continue
                text = iso
        out[name] = text
    out.update(metadata)
    return out, reasons
