"""HRIS export files (CSV / XLSX) from a drop directory, minimised by the same HR policy.

A second connector class, plugin ``hris-export``, rather than a second stream of
``bamboohr``: an export drop needs no API key and no company domain (it may come from any
HR system), is read per file with its own cursor (fingerprint and row, as the spreadsheet
connector reads sales sheets) and is deployed where the files land; one connector per source
keeps each config, check and failure to what that source needs. Both publish the same
``employees`` stream (``crm.raw.hr.employees.v1``, ``hr/EmployeeChanged``) through the same
policy, so the read model sees one shape whichever way HR data arrives.

Rows are read by ``connectors.spreadsheet.reader.read_sheet`` (every mess real exports hold)
and mapped by header (``mappings/hris_export.yaml``) to canonical fields; the minimisation
policy then keeps only the allowed ones. Every other column (SSN, birth date, salary) is
dropped and counted by header name. An export is a snapshot: a row is ``Exported``, never
an erasure (a missing row is no proof of a deletion).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from connectors.bamboohr.connector import EMPLOYEES, FIELDS_DROPPED
from connectors.bamboohr.policy import DEFAULT_POLICY, Minimiser, load_minimisation_policy
from connectors.bamboohr.records import EMPLOYEE_EVENT_TYPE, SCHEMAS_DIR, schema_fields, shape
from connectors.spreadsheet.connector import SUFFIXES, offsets_done
from connectors.spreadsheet.mapping import normalize_date, normalize_header
from connectors.spreadsheet.reader import SheetRow, fingerprint
from connectors.spreadsheet.sheet_source import sheet_records
from hub.errors import ConfigError
from hub.policies import read_policy_yaml  # the strict YAML reader policy files share
from hub.quarantine import QuarantineReason, json_payload
from hub.sdk.streams import (
    OffsetReader,
    SourceConnectorBase,
    SourcePartition,
    SourceRecord,
    Stream,
    resume_partition,
)

log = logging.getLogger(__name__)

SOURCE_SYSTEM = "hris-export"
DEFAULT_MAPPING = Path(__file__).parent / "mappings" / "hris_export.yaml"


class HrExportMapping(BaseModel):
    """Header spellings per canonical field of an HR export."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    fields: dict[str, list[str]]
    required_headers: list[str]

    @field_validator("fields")
    @classmethod
    def _known(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        schema = (info.context or {}).get("schema_fields", ())
        unknown = sorted(set(value) - set(schema))
        if schema and unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        owner: dict[str, str] = {}
        for field_name, spellings in value.items():
            for spelling in spellings:
                key = normalize_header(str(spelling))
                if owner.setdefault(key, field_name) != field_name:
                    raise ValueError(f"spelling {spelling!r} is listed for two fields")
        return value

    @cached_property
    def index(self) -> dict[str, str]:
        """Normalised spelling -> canonical field."""
        return {normalize_header(s): f for f, spellings in self.fields.items() for s in spellings}

    @classmethod
    def load(cls, path: Path, schema: str) -> HrExportMapping:
        data = read_policy_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with version, fields, required_headers")
        try:
            return cls.model_validate(data, context={"schema_fields": schema_fields(schema)})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "mapping"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{path}: {loc}: {msg}") from None

    def columns(self, headers: Sequence[str]) -> dict[str, str]:
        """Sheet header -> canonical field; ConfigError naming a required field without one."""
        out = {h: f for h in headers if (f := self.index.get(normalize_header(h)))}
        missing = [f for f in self.required_headers if f not in out.values()]
        if missing:
            wanted = "; ".join(f"{f} (e.g. {', '.join(self.fields[f][:3])})" for f in missing)
            raise ConfigError(f"no column for required field(s): {wanted}")
        return out


class HrisExportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="hr-exports", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    drop_dir: Path = Field(description="Directory the HRIS export files are dropped in")
    mapping: Path = Field(default=DEFAULT_MAPPING, description="Column mapping (YAML)")
    policy: Path = Field(default=DEFAULT_POLICY, description="Data minimisation policy")
    department: str = "hr"
    topic: str = "crm.raw.hr.employees.v1"
    settle_seconds: float = Field(
        default=1.0, ge=0, description="Ignore files modified more recently (still being copied)"
    )


class HrisExportConnector(SourceConnectorBase):
    """Plugin ``hris-export`` (entry point group ``crm_hub.connectors``)."""

    Config = HrisExportConfig
    version = "0.1.0"

    def __init__(self, config: HrisExportConfig, *, schemas_dir: Path = SCHEMAS_DIR) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.policy = load_minimisation_policy(config.policy, schemas_dir=schemas_dir)
        rules = self.policy.stream(EMPLOYEES)
        self.mapping = HrExportMapping.load(config.mapping, rules.schema_name)
        self.minimiser = Minimiser(self.policy, EMPLOYEES)
        self._stream = Stream(
            name=EMPLOYEES,
            topic=config.topic,
            event_type=EMPLOYEE_EVENT_TYPE,
            schema=rules.schema_name,
            primary_key=("employee_id",),
        )

    def streams(self) -> Sequence[Stream]:
        return (self._stream,)

    def check(self) -> None:
        if not self.config.drop_dir.is_dir():
            raise ConfigError(f"connector {self.name}: drop.dir {self.config.drop_dir} is missing")

    def _candidates(self) -> list[Path]:
        drop = self.config.drop_dir
        if not drop.is_dir():
            return []
        now = time.time()
        return [
            p
            for p in sorted(drop.iterdir())
            if p.is_file()
            and p.suffix.lower() in SUFFIXES
            and not p.name.startswith((".", "~$"))
            and now - p.stat().st_mtime >= self.config.settle_seconds
        ]

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]:
        parts = []
        for path in self._candidates():
            fp = fingerprint(path)
            part = resume_partition(offsets, self.name, {"file": path.name})
            if part.cursor is None or part.cursor.get("version") != fp:
                if part.cursor is not None:
                    log.warning("connector %s: %s changed; reading it again", self.name, path.name)
                part = SourcePartition(part.partition, {"version": fp, "position": 0})
            elif offsets_done(offsets, self.name, part.partition):
                continue
            parts.append(part)
        return parts

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        name = str(part.partition["file"])
        columns: dict[tuple[str, ...], dict[str, str]] = {}
        before = self.minimiser.dropped.copy()
        try:
            yield from sheet_records(
                self.config.drop_dir / name,
                name,
                part.cursor,
                connector=self.name,
                row_record=lambda item, rid, at, file, modified: self._record(
                    item, rid, at, file, modified, columns
                ),
                bad_cells=lambda bad: self._allowed_cells(bad.cells or {}, columns),
            )
        finally:
            self._report_dropped(name, self.minimiser.dropped - before)

    def _columns(
        self, headers: tuple[str, ...], cache: dict[tuple[str, ...], dict[str, str]]
    ) -> dict[str, str]:
        found = cache.get(headers)
        if found is None:
            found = cache[headers] = self.mapping.columns(headers)
        return found

    def _allowed_cells(
        self, cells: dict[str, str], cache: dict[tuple[str, ...], dict[str, str]]
    ) -> dict[str, str]:
        """What a quarantine record may keep of a bad row: allowed fields only."""
        index, allowed = self.mapping.index, self.minimiser.rules.fields
        return {h: v for h, v in cells.items() if index.get(normalize_header(h)) in allowed}

    def _record(
        self,
        item: SheetRow,
        rid: str,
        at: dict[str, Any],
        name: str,
        modified: datetime,
        cache: dict[tuple[str, ...], dict[str, str]],
    ) -> SourceRecord:
        columns = self._columns(tuple(item.cells), cache)
        source = self.minimiser.from_columns(item.cells, columns)
        rules = self.minimiser.rules
        for field_name in rules.date_fields:
            text = source.get(field_name)
            if text:
                source[field_name] = normalize_date(text)
        meta = {
            "change_type": "Exported",
            "last_changed": None,
            "source_system": SOURCE_SYSTEM,
            "source_file": name,
            "minimisation_policy": self.policy.version,
        }
        value, reasons = shape(source, rules, meta)
        employee_id = value.get("employee_id")
        if not employee_id:
            reasons.append(
                QuarantineReason("hr.employee_id", "employee_id", "the row has no employee id")
            )
        common: dict[str, Any] = {
            "record_id": rid,
            "key": employee_id or None,
            "cursor": at,
            "position": item.row,
            "source_file": name,
            "event_time": modified,
        }
        if reasons:
            return SourceRecord(
                **common,
                reasons=tuple(reasons),
                raw=json_payload(self._allowed_cells(item.cells, cache)),
                error_class="SkippableError",
            )
        return SourceRecord(**common, value=value)

    def _report_dropped(self, name: str, dropped: collections.Counter[str]) -> None:
        if not dropped:
            return
        for header, times in dropped.items():  # the label: the header's letters, bounded
            FIELDS_DROPPED.labels(self.name, normalize_header(header)[:40]).inc(times)
        names = ", ".join(f"{k} x{n}" for k, n in sorted(dropped.items()))
        log.info(
            "connector %s: %s: dropped columns the policy does not allow: %s",
            self.name,
            name,
            names,
        )
