"""Sales lead spreadsheets (CSV and XLSX) from a drop directory, or one file.

Stream ``leads``: each data row mapped through the YAML column mapping to the canonical
``sales/LeadCaptured`` fields, keyed by ``lead_id``. Without a mapping (standalone reads
only: ``crmhub connectors read spreadsheet --path FILE``) the stream is ``rows``: each
row's cells keyed by the header text, as read, with no type coercion.

Source partition: the file name. Cursor: the file's fingerprint (sha256) and the last
acknowledged row. A file whose fingerprint changed after it was read (edited in place) is
detected, logged and read again from its first row as a new version; event ids derive
from fingerprint and row, so a re-read of the same bytes yields the same ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from connectors.spreadsheet.mapping import HeaderMap, LeadMapping
from connectors.spreadsheet.reader import SheetRow, fingerprint
from connectors.spreadsheet.sheet_source import sheet_records
from hub import topics
from hub.errors import ConfigError
from hub.sdk.streams import (
    OffsetReader,
    SourceConnectorBase,
    SourcePartition,
    SourceRecord,
    Stream,
    resume_partition,
)

log = logging.getLogger(__name__)

LEAD_CAPTURED_TYPE = "crm.sales.lead.captured.v1"
SHEET_ROW_TYPE = "crm.sheet.row.read.v1"
SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx")


class SpreadsheetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="sales-leads", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    path: Path | None = Field(default=None, description="One sheet to read (instead of drop.dir)")
    drop_dir: Path | None = Field(
        default=None, validate_default=True, description="Directory the sheets are dropped in"
    )
    mapping: Path | None = Field(
        default=None,
        validate_default=True,
        description="Column mapping (YAML) from sheet headers to lead fields",
    )
    department: str = "sales"
    topic: str = topics.RAW_SALES_LEADS
    settle_seconds: float = Field(
        default=1.0, ge=0, description="Ignore files modified more recently (still being copied)"
    )

    @field_validator("drop_dir")
    @classmethod
    def _one_source(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        path = info.data.get("path")
        if value is None and path is None:
            raise ValueError("drop.dir is required (or path, to read one file)")
        if value is not None and path is not None:
            raise ValueError("give drop.dir or path, not both")
        return value

    @field_validator("mapping")
    @classmethod
    def _mapping_to_publish(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and not (info.context or {}).get("standalone"):
            raise ValueError("mapping is required to publish leads (a standalone read may omit it)")
        return value


class SpreadsheetConnector(SourceConnectorBase):
    """Plugin ``spreadsheet`` (entry point group ``crm_hub.connectors``)."""

    Config = SpreadsheetConfig
    version = "0.2.0"

    def __init__(self, config: SpreadsheetConfig) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.mapping = LeadMapping.load(config.mapping) if config.mapping else None
        self.files_modified = 0
        if self.mapping is not None:
            self._stream = Stream(
                name="leads",
                topic=config.topic,
                event_type=LEAD_CAPTURED_TYPE,
                schema="sales/LeadCaptured",
                primary_key=(self.mapping.id_field,),
            )
        else:
            self._stream = Stream(
                name="rows", topic=config.topic, event_type=SHEET_ROW_TYPE, schema=None
            )

    def streams(self) -> Sequence[Stream]:
        return (self._stream,)

    def check(self) -> None:
        if self.config.path is not None:
            if not self.config.path.is_file():
                raise ConfigError(f"connector {self.name}: no file at path {self.config.path}")
        elif self.config.drop_dir is not None and not self.config.drop_dir.is_dir():
            raise ConfigError(f"connector {self.name}: drop.dir {self.config.drop_dir} is missing")

    def _candidates(self) -> list[Path]:
        if self.config.path is not None:
            return [self.config.path] if self.config.path.is_file() else []
        drop = self.config.drop_dir
        if drop is None or not drop.is_dir():
            return []
        now = time.time()
        out = []
        for path in sorted(drop.iterdir()):
            if not path.is_file() or path.suffix.lower() not in SUFFIXES:
                continue
            if path.name.startswith((".", "~$")):  # hidden and Excel lock files
                continue
            if now - path.stat().st_mtime < self.config.settle_seconds:
                continue
            out.append(path)
        return out

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]:
        parts = []
        for path in self._candidates():
            fp = fingerprint(path)
            part = resume_partition(offsets, self.name, {"file": path.name})
            stored = part.cursor
            if stored is None:
                part.cursor = {"version": fp, "position": 0}
            elif stored.get("version") != fp:
                self.files_modified += 1
                log.warning(
                    "connector %s: %s changed after import (fingerprint %s… -> %s…); "
                    "reading it again as a new version",
                    self.name,
                    path.name,
                    str(stored.get("version"))[:12],
                    fp[:12],
                )
                part = SourcePartition(part.partition, {"version": fp, "position": 0})
            elif offsets_done(offsets, self.name, part.partition):
                continue
            parts.append(part)
        return parts

    def _path_of(self, name: str) -> Path:
        if self.config.path is not None:
            return self.config.path
        assert self.config.drop_dir is not None
        return self.config.drop_dir / name

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        name = str(part.partition["file"])
        header_maps: dict[tuple[str, ...], HeaderMap] = {}
        yield from sheet_records(
            self._path_of(name),
            name,
            part.cursor,
            connector=self.name,
            row_record=lambda item, rid, at, file, modified: self._record(
                item, rid, at, file, modified, header_maps
            ),
        )

    def _record(
        self,
        item: SheetRow,
        rid: str,
        at: dict[str, Any],
        name: str,
        modified: datetime,
        header_maps: dict[tuple[str, ...], HeaderMap],
    ) -> SourceRecord:
        if self.mapping is None:  # raw rows: the cells as read
            return SourceRecord(
                record_id=rid,
                value=dict(item.cells),
                cursor=at,
                position=item.row,
                source_file=name,
                event_time=modified,
            )
        headers = tuple(item.cells)
        hmap = header_maps.get(headers)
        if hmap is None:
            hmap = self.mapping.resolve(headers)
            header_maps[headers] = hmap
        value = self.mapping.apply(hmap, item, source_name=name)
        return SourceRecord(
            record_id=rid,
            value=value,
            key=str(value[self.mapping.id_field]),
            cursor=at,
            position=item.row,
            source_file=name,
            event_time=modified,
        )


def offsets_done(offsets: OffsetReader, connector: str, partition: dict[str, object]) -> bool:
    stored = offsets.get(connector, dict(partition))
    return bool(stored and stored.get("done"))
