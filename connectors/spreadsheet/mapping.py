"""The column mapping of sales lead sheets: which header spellings feed which canonical
``LeadCaptured`` field, which columns a sheet must have, and which fields hold dates.

Headers match case-, whitespace-, underscore- and punctuation-insensitively ('E-mail',
'email ', 'E_Mail' are one spelling). When several columns of a sheet feed one field (say
'Phone' and 'Mobile'), the first non-empty one in the mapping's order of spellings wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from connectors.spreadsheet.reader import SheetRow
from hub.errors import ConfigError
from hub.events import deterministic_id
from hub.settings import REPO_ROOT

__all__ = [
    "LEAD_SCHEMA",
    "HeaderMap",
    "LeadMapping",
    "lead_field_names",
    "normalize_date",
    "normalize_header",
]

LEAD_SCHEMA = REPO_ROOT / "schemas" / "sales" / "LeadCaptured.avsc"

_EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 = 1900-01-01 after Excel's 1900 leap-year bug
_SERIAL_MIN, _SERIAL_MAX = 1, 2_958_465  # 1900-01-01 .. 9999-12-31
_TWO_DIGIT_PIVOT = 70  # '24' -> 2024, '85' -> 1985


@cache
def lead_field_names(schema_path: Path = LEAD_SCHEMA) -> tuple[str, ...]:
    """The field names of the LeadCaptured Avro schema, in schema order."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    return tuple(str(f["name"]) for f in schema["fields"])


def normalize_header(text: str) -> str:
    """'E-mail Address ' -> 'emailaddress': casefolded, letters and digits only."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


@dataclass(frozen=True, slots=True)
class HeaderMap:
    """How one sheet's headers feed the canonical fields."""

    sources: dict[str, tuple[str, ...]]  # canonical field -> sheet headers, by priority
    unmapped: tuple[str, ...]  # sheet headers no field takes, in sheet order

    @property
    def columns(self) -> dict[str, str]:
        """Sheet header -> canonical field."""
        return {h: field for field, headers in self.sources.items() for h in headers}


class LeadMapping(BaseModel, frozen=True, extra="forbid"):
    version: str
    department: str
    entity: str
    id_field: str
    fields: dict[str, list[str]]
    date_fields: list[str]
    required_headers: list[str]

    @field_validator("version", "department", "entity", "id_field")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        known = lead_field_names()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(unknown)}; LeadCaptured has {', '.join(known)}"
            )
        owner: dict[str, str] = {}
        for field, spellings in value.items():
            if not spellings:
                raise ValueError(f"field {field} has no header spellings")
            for spelling in spellings:
                key = normalize_header(spelling)
                if not key:
                    raise ValueError(f"field {field}: spelling {spelling!r} has no letters")
                other = owner.setdefault(key, field)
                if other != field:
                    raise ValueError(f"spelling {spelling!r} is listed for {other} and {field}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LeadMapping:
        known = set(lead_field_names())
        if self.id_field not in known:
            raise ValueError(f"id_field {self.id_field} is not a LeadCaptured field")
        for name in ("date_fields", "required_headers"):
            bad = sorted(set(getattr(self, name)) - set(self.fields))
            if bad:
                raise ValueError(f"{name} lists field(s) without spellings: {', '.join(bad)}")
        return self

    @classmethod
    def load(cls, path: Path) -> LeadMapping:
        """Read and check a mapping file; any problem is one ConfigError line."""
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"lead mapping {path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise ConfigError(f"lead mapping {path}: invalid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"lead mapping {path}: expected a mapping of settings at the top")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "mapping"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"lead mapping {path}: {loc}: {msg}") from None

    @cached_property
    def spelling_index(self) -> dict[str, tuple[str, int]]:
        """Normalized spelling -> (canonical field, priority)."""
        return {
            normalize_header(spelling): (field, rank)
            for field, spellings in self.fields.items()
            for rank, spelling in enumerate(spellings)
        }

    def resolve(self, headers: Sequence[str]) -> HeaderMap:
        """Match a sheet's headers; ConfigError names required fields without a column."""
        index = self.spelling_index
        found: dict[str, list[tuple[int, int, str]]] = {}
        unmapped: list[str] = []
        for position, header in enumerate(headers):
            hit = index.get(normalize_header(header))
            if hit is None:
                unmapped.append(header)
                continue
            field, rank = hit
            found.setdefault(field, []).append((rank, position, header))
        missing = [f for f in self.required_headers if f not in found]
        if missing:
            wanted = "; ".join(f"{f} (e.g. {', '.join(self.fields[f][:3])})" for f in missing)
            raise ConfigError(f"sheet has no column for required field(s): {wanted}")
        sources = {field: tuple(h for _, _, h in sorted(hits)) for field, hits in found.items()}
        return HeaderMap(sources=sources, unmapped=tuple(unmapped))

    def apply(
        self, header_map: HeaderMap, row: SheetRow, *, source_name: str
    ) -> dict[str, str | None]:
        """One sheet row as a LeadCaptured value: every schema field, '' and missing as None,
        dates as ISO text, and an id derived from the person when the sheet has none."""
        cells = row.cells
        out: dict[str, str | None] = dict.fromkeys(lead_field_names())
        for field, headers in header_map.sources.items():
            for header in headers:
                text = cells.get(header)
                if text:
                    out[field] = text
                    break
        for field in self.date_fields:
            text = out.get(field)
            if text is not None:
                out[field] = normalize_date(text)
        if not out.get(self.id_field):
            out[self.id_field] = _derived_id(out, source_name, row.row)
        return out


def _derived_id(value: dict[str, str | None], source_name: str, row: int) -> str:
    """Stable across re-imports of the same person from the same file name."""
    email = value.get("email")
    if email:
        return deterministic_id(source_name, email.lower())
    parts = (
        value.get("first_name") or "",
        value.get("last_name") or "",
        value.get("company") or "",
    )
    if any(parts):
        return deterministic_id(source_name, *parts)
    return deterministic_id(source_name, f"row {row}")  # nothing identifies the person


@lru_cache(maxsize=8192)  # a sheet repeats its dates; parsing one costs ~10 µs
def normalize_date(text: str) -> str:
    """Excel serials and common date texts -> 'YYYY-MM-DD'; anything else unchanged.

    '45123', '45123.0' (serial; a time fraction is dropped), '2024-03-05' and ISO
    datetimes, '2024/03/05', '03/05/2024' (US month first; day first when the first part
    exceeds 12), '05.03.2024' (day first), '20240305'; two-digit years pivot at 70.
    """
    value = text.strip()
    parsed = _parse_serial(value) or _parse_text_date(value)
    return parsed.isoformat() if parsed is not None else text


def _parse_serial(value: str) -> date | None:
    whole, dot, fraction = value.partition(".")
    if not whole.isdigit() or (dot and not fraction.isdigit()):
        return None
    if len(whole) == 8 and not dot:  # compact yyyymmdd
        return _make_date(int(whole[:4]), int(whole[4:6]), int(whole[6:]))
    serial = int(whole)
    if not _SERIAL_MIN <= serial <= _SERIAL_MAX:
        return None
    if serial < 60:  # before Excel's phantom 1900-02-29
        return _EXCEL_EPOCH + timedelta(days=serial + 1)
    if serial == 60:
        return None
    return _EXCEL_EPOCH + timedelta(days=serial)


def _parse_text_date(value: str) -> date | None:
    head = value[:10]
    if len(value) >= 10 and head[4:5] in "-/" and head[7:8] == head[4:5]:
        if len(value) > 10 and value[10] not in "T ":
            return None
        parts = head.split(head[4])
        return _from_parts(parts[0], parts[1], parts[2])
    for sep in "/.-":
        parts = value.split(sep)
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            first, second, year = parts
            if len(year) not in (2, 4) or not (1 <= len(first) <= 2 and 1 <= len(second) <= 2):
                return None
            day_first = sep != "/" or int(first) > 12
            day, month = (first, second) if day_first else (second, first)
            return _from_parts(year, month, day)
    return None


def _from_parts(year: str, month: str, day: str) -> date | None:
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return None
    y = int(year)
    if len(year) == 2:
        y += 2000 if y < _TWO_DIGIT_PIVOT else 1900
    return _make_date(y, int(month), int(day))


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
