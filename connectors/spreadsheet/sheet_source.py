"""Reading one sheet file as source records: what every file-drop connector shares.

The cursor of a file is its fingerprint (``version``) and the last row handled
(``position``); rows come from ``read_sheet`` after that row. A row that cannot be read
becomes a quarantine record (its cells, as far as ``bad_cells`` lets them leave); a file
that cannot be read at all (a required column missing, a corrupt workbook) becomes one
quarantine record for the file, and the connector goes on with its other files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.spreadsheet.reader import BadRow, SheetRow, fingerprint, read_sheet
from hub.errors import ConfigError, SkippableError
from hub.quarantine import QuarantineReason, json_payload
from hub.sdk.streams import SourceRecord

log = logging.getLogger(__name__)

# (row, record id, cursor after the row, file name, file modified time) -> its record
RowRecord = Callable[[SheetRow, str, dict[str, Any], str, datetime], SourceRecord]


def sheet_records(
    path: Path,
    name: str,
    cursor: Mapping[str, Any] | None,
    *,
    connector: str,
    row_record: RowRecord,
    bad_cells: Callable[[BadRow], dict[str, str]] = lambda bad: dict(bad.cells or {}),
) -> Iterator[SourceRecord]:
    """The records of ``path`` after ``cursor`` (see the module doc)."""
    cursor = cursor or {}
    version = str(cursor.get("version") or fingerprint(path))
    start_after = int(cursor.get("position", 0))
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    try:
        for item in read_sheet(path, start_after_row=start_after):
            rid = f"{name}@{version[:16]}:{item.row}"
            at = {"version": version, "position": item.row}
            if isinstance(item, BadRow):
                yield SourceRecord(
                    record_id=rid,
                    cursor=at,
                    position=item.row,
                    reasons=(QuarantineReason(item.rule_id, None, item.message),),
                    raw=json_payload(bad_cells(item)),
                    source_file=name,
                    event_time=modified,
                    error_class="SkippableError",
                )
                continue
            yield row_record(item, rid, at, name, modified)
    except (ConfigError, SkippableError) as exc:
        log.error("connector %s: %s refused: %s", connector, name, exc.message)
        yield SourceRecord(
            record_id=f"{name}@{version[:16]}:file",
            cursor={"version": version, "position": start_after + 1},
            position=start_after + 1,
            reasons=(QuarantineReason("file.unreadable", None, f"{name}: {exc.message}"),),
            source_file=name,
            event_time=modified,
            error_class=type(exc).__name__,
        )


__all__ = ["RowRecord", "sheet_records"]
