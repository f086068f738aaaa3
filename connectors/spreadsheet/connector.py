"""Sales lead spreadsheets (CSV and XLSX) from a drop directory.

Source partition: the file name. Source offset: the file's fingerprint (sha256) and the
last acknowledged row. A file whose fingerprint changed after it was read (edited in
place) is detected, logged and read again from its first row as a new version; event ids
derive from fingerprint and row, so a re-read of the same bytes yields the same ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from connectors.spreadsheet.mapping import HeaderMap, LeadMapping
from connectors.spreadsheet.reader import BadRow, fingerprint, read_sheet
from hub import topics
from hub.connect import SourcePartition, SourceRecord
from hub.connect_offsets import OffsetStore
from hub.errors import ConfigError, SkippableError
from hub.quarantine import QuarantineReason, json_payload

log = logging.getLogger(__name__)

LEAD_CAPTURED_TYPE = "crm.sales.lead.captured.v1"
SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx")


class SpreadsheetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="sales-leads", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    drop_dir: Path
    mapping: Path
    department: str = "sales"
    topic: str = topics.RAW_SALES_LEADS
    settle_seconds: float = Field(
        default=1.0, ge=0, description="Ignore files modified more recently (still being copied)"
    )


class SpreadsheetConnector:
    """Plugin ``spreadsheet`` (entry point group ``crm_hub.connectors``)."""

    Config = SpreadsheetConfig
    event_type = LEAD_CAPTURED_TYPE
    value_schema = "sales/LeadCaptured"  # under schemas/: the Avro schema of `topic`
    version = "0.1.0"

    @classmethod
    def from_config(cls, config: SpreadsheetConfig) -> SpreadsheetConnector:
        """Build from a checked config (ConfigError if the mapping cannot be loaded)."""
        return cls(config)

    def __init__(self, config: SpreadsheetConfig) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.topic = config.topic
        self.mapping = LeadMapping.load(config.mapping)
        self.files_modified = 0

    def _candidates(self) -> list[Path]:
        drop = self.config.drop_dir
        if not drop.is_dir():
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

    def partitions(self, offsets: OffsetStore) -> list[SourcePartition]:
        parts = []
        for path in self._candidates():
            key = {"file": path.name}
            fp = fingerprint(path)
            stored = offsets.get(self.name, key)
            if stored is None:
                parts.append(SourcePartition(key, fp, 0))
                continue
            if stored.get("version") != fp:
                self.files_modified += 1
                log.warning(
                    "connector %s: %s changed after import (fingerprint %s… -> %s…); "
                    "reading it again as a new version",
                    self.name,
                    path.name,
                    str(stored.get("version"))[:12],
                    fp[:12],
                )
                parts.append(SourcePartition(key, fp, 0))
                continue
            if stored.get("done"):
                continue
            counters = {k: int(stored.get(k, 0)) for k in ("rows_read", "published", "quarantined")}
            parts.append(
                SourcePartition(
                    key,
                    fp,
                    int(stored.get("position", 0)),
                    counters,
                    log={str(k): int(v) for k, v in dict(stored.get("log", {})).items()},
                )
            )
        return parts

    def fetch(self, part: SourcePartition) -> Iterator[SourceRecord]:
        name = str(part.partition["file"])
        path = self.config.drop_dir / name
        header_maps: dict[tuple[str, ...], HeaderMap] = {}
        try:
            for item in read_sheet(path, start_after_row=part.start_after):
                rid = f"{name}@{part.version[:16]}:{item.row}"
                if isinstance(item, BadRow):
                    yield SourceRecord(
                        position=item.row,
                        record_id=rid,
                        reasons=(QuarantineReason(item.rule_id, None, item.message),),
                        raw=json_payload(item.cells),
                        source_file=name,
                    )
                    continue
                headers = tuple(item.cells)
                hmap = header_maps.get(headers)
                if hmap is None:
                    hmap = self.mapping.resolve(headers)
                    header_maps[headers] = hmap
                value = self.mapping.apply(hmap, item, source_name=name)
                yield SourceRecord(
                    position=item.row,
                    record_id=rid,
                    value=value,
                    key=str(value[self.mapping.id_field]),
                    source_file=name,
                )
        except (ConfigError, SkippableError) as exc:
            # The whole file cannot be read (missing required column, corrupt file): one
            # quarantine record for the file, and the connector goes on with the others.
            log.error("connector %s: %s refused: %s", self.name, name, exc.message)
            yield SourceRecord(
                position=part.start_after + 1,
                record_id=f"{name}@{part.version[:16]}:file",
                reasons=(QuarantineReason("file.unreadable", None, exc.message),),
                source_file=name,
            )
