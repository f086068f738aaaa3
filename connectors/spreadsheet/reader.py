"""Read sales lead sheets (CSV and XLSX) as rows of text, tolerating the mess real exports
hold: byte-order marks, Windows-1252 bytes, sniffed delimiters, quoted newlines, blank and
title rows before the header, a header repeated further down, stray spaces, and numbers or
dates that Excel typed for us.

Every data record comes out either as a :class:`SheetRow` or, when it cannot be read as a
row of the header's width, as a :class:`BadRow` for quarantine. Row numbers are physical
positions in the file (CSV line of the record's first line; XLSX sheet row), so a restarted
reader resumes after the last acknowledged row with ``start_after_row``.

Messages never hold a cell value: only the file name, row number, column name and rule id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from hub.errors import SkippableError

__all__ = ["BadRow", "SheetRow", "fingerprint", "read_sheet"]

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
DELIMITERS = ";,\t"
SAMPLE_BYTES = 32 * 1024
MIN_HEADER_CELLS = 2  # a row with fewer non-empty cells before the header is a title row

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (BIFF) and other OLE files
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_EXCEL_ERRORS = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}
)


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One data record: header text -> cell text, both trimmed ('' for an empty cell)."""

    row: int
    cells: dict[str, str]
    sheet: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A record that cannot be read as a row of the header's width.

    ``message`` is safe to show; ``cells`` is what could be read, for re-drive, and may hold
    personal data (it goes to the quarantine topic, never to logs).
    """

    row: int
    rule_id: str
    message: str
    cells: dict[str, str] | None
    sheet: str | None = None


def fingerprint(path: Path) -> str:
    """sha256 hex digest of the file's bytes, streamed."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_sheet(path: Path, *, start_after_row: int = 0) -> Iterator[SheetRow | BadRow]:
    """Yield the data records of a CSV or XLSX file whose row is after ``start_after_row``.

    Raises :class:`SkippableError` (on the first ``next``) when the file cannot be read at
    all: not CSV/XLSX, no header row, corrupt workbook.
    """
    try:
        with path.open("rb") as raw:
            head = raw.read(len(_OLE_MAGIC))
    except OSError as exc:
        raise SkippableError(f"{path.name}: cannot open the file", internal=exc.strerror) from None
    suffix = path.suffix.lower()
    if head.startswith(_ZIP_MAGIC):
        yield from _read_xlsx(path, start_after_row)
    elif head.startswith(_OLE_MAGIC):
        raise SkippableError(
            f"{path.name}: legacy Excel (.xls) or other OLE file; save it as .xlsx or .csv"
        )
    elif suffix in XLSX_SUFFIXES:
        raise SkippableError(f"{path.name}: not a valid .xlsx workbook (no zip container)")
    elif suffix in CSV_SUFFIXES:
        yield from _read_csv(path, start_after_row)
    else:
        raise SkippableError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            "expected .csv, .tsv, .txt or .xlsx"
        )


# -- shared row logic ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Header:
    names: tuple[str, ...]  # unique keys for SheetRow.cells
    raw: list[str]  # the trimmed header cells, to spot the header repeated later

    @property
    def width(self) -> int:
        return len(self.names)


def _make_header(cells: Sequence[str]) -> _Header:
    """Header from a trimmed row: trailing empty cells dropped, interior empty ones named
    ``column_<n>``, duplicates suffixed `` (2)``, `` (3)``…"""
    raw = list(cells)
    while raw and not raw[-1]:
        raw.pop()
    names: list[str] = []
    seen: set[str] = set()
    for index, text in enumerate(raw, start=1):
        name = text or f"column_{index}"
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name} ({n})"
        seen.add(candidate)
        names.append(candidate)
    return _Header(tuple(names), raw)


def _is_header_candidate(cells: Sequence[str]) -> bool:
    filled = 0
    for text in cells:
        if text:
            filled += 1
            if filled >= MIN_HEADER_CELLS:
                return True
    return False


def _partial_cells(header: _Header, cells: Sequence[str]) -> dict[str, str]:
    """What could be read of a row of the wrong width: cells past the header are keyed
    ``_col<n>`` (1-based column number)."""
    out = dict(zip(header.names, cells, strict=False))
    for index in range(header.width, len(cells)):
        out[f"_col{index + 1}"] = cells[index]
    return out


def _width_problem(header: _Header, n_cells: int, *, sheet: bool) -> str:
    if sheet:
        return f"has data in {n_cells} columns, header has {header.width}"
    return f"has {n_cells} cells, header has {header.width}"


# -- CSV ----------------------------------------------------------------------------------


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3  # only a character cut by the sample's end
    return True


def _decode_sample(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a multi-byte character cut by the sample's end
            return data[: exc.start].decode("utf-8", "replace")
        return data.decode("cp1252", "replace")


def _unquoted_counts(line: str) -> dict[str, int]:
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return counts


def _choose_delimiter(sample: str) -> str:
    """csv.Sniffer restricted to ; , and tab; when it fails or disagrees with the header
    line (the first line holding a candidate outside quotes), count there."""
    counts = dict.fromkeys(DELIMITERS, 0)
    for line in sample.splitlines()[:50]:
        counts = _unquoted_counts(line)
        if any(counts.values()):
            break
    counted = max(DELIMITERS, key=counts.__getitem__)
    if not counts[counted]:
        return ","  # a single column
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return counted
    return sniffed if counts.get(sniffed, 0) >= counts[counted] else counted


def _decoded_lines(raw: IO[bytes], undecodable: set[int]) -> Iterator[str]:
    """Physical lines as text, decoded one by one: UTF-8, else Windows-1252. Numbers of
    lines that not even cp1252 decodes are added to ``undecodable``."""
    for n, line in enumerate(raw, start=1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            try:
                yield line.decode("cp1252")
            except UnicodeDecodeError:
                undecodable.add(n)
                yield line.decode("cp1252", "replace")


def _read_csv(path: Path, start_after_row: int) -> Iterator[SheetRow | BadRow]:
    name = path.name
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SkippableError(f"{name}: cannot open the file", internal=exc.strerror) from None
    with raw:
        sample_bytes = raw.read(SAMPLE_BYTES)
        raw.seek(0)
        undecodable: set[int] = set()
        lines: Iterable[str]
        if sample_bytes.startswith(_UTF16_BOMS):
            # Excel's "Unicode text" export: UTF-16 with BOM, tab-delimited.
            text_io = io.TextIOWrapper(raw, encoding="utf-16", newline="")
            sample = text_io.read(SAMPLE_BYTES // 2)
            text_io.seek(0)
            lines = text_io
        else:
            if b"\x00" in sample_bytes:
                raise SkippableError(f"{name}: binary content, not a CSV text file")
            if sample_bytes.startswith(_UTF8_BOM):
                raw.seek(len(_UTF8_BOM))
                sample_bytes = sample_bytes[len(_UTF8_BOM) :]
            sample = _decode_sample(sample_bytes)
            if b"\n" not in sample_bytes and b"\r" in sample_bytes:
                # Classic Mac line ends (CR only): let the text layer split the lines.
                encoding = "utf-8" if _is_utf8(sample_bytes) else "cp1252"
                lines = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
            else:
                lines = _decoded_lines(raw, undecodable)
        delimiter = _choose_delimiter(sample)
        try:
            yield from _csv_records(name, lines, delimiter, start_after_row, undecodable)
        except UnicodeDecodeError:
            raise SkippableError(f"{name}: cannot decode the file as text") from None


def _csv_records(
    name: str, lines: Iterable[str], delimiter: str, start_after_row: int, undecodable: set[int]
) -> Iterator[SheetRow | BadRow]:
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
    header: _Header | None = None
    prev_end = 0  # physical line where the previous record ended
    while True:
        try:
            for fields in reader:
                start = prev_end + 1
                prev_end = reader.line_num
                cells = [text.strip() for text in fields]
                if not any(cells):
                    continue  # blank line or a row of empty cells
                if header is None:
                    if _is_header_candidate(cells):
                        header = _make_header(cells)
                    continue
                if start <= start_after_row:
                    continue
                if undecodable and any(n in undecodable for n in range(start, prev_end + 1)):
                    yield BadRow(
                        start,
                        "csv.decode",
                        f"{name} row {start}: bytes that are neither UTF-8 nor Windows-1252",
                        _partial_cells(header, cells),
                    )
                    continue
                width = header.width
                if len(cells) != width:
                    if len(cells) > width and not any(cells[width:]):
                        del cells[width:]  # trailing empty cells, as spreadsheets export them
                    else:
                        yield _csv_bad_width(name, header, cells, start, prev_end)
                        continue
                if cells[0] == header.raw[0] and cells == header.raw:
                    continue  # the header repeated (sheets concatenated)
                yield SheetRow(start, dict(zip(header.names, cells, strict=True)))
        except csv.Error as exc:
            start = prev_end + 1
            prev_end = reader.line_num
            if header is None:
                raise SkippableError(f"{name}: cannot parse the header as CSV") from None
            if start > start_after_row:
                yield BadRow(
                    start, "csv.parse", f"{name} row {start}: unreadable CSV record ({exc})", None
                )
            continue
        break
    if header is None:
        raise SkippableError(f"{name}: no header row found")


def _csv_bad_width(name: str, header: _Header, cells: list[str], start: int, end: int) -> BadRow:
    span = f"row {start}" if end == start else f"rows {start}-{end}"
    return BadRow(
        start,
        "csv.column_count",
        f"{name} {span}: {_width_problem(header, len(cells), sheet=False)}",
        _partial_cells(header, cells),
    )


# -- XLSX ---------------------------------------------------------------------------------


def _text_of_float(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _text_of_datetime(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time() else value.isoformat()


def _text_of_bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


_CELL_TEXT: dict[type, Callable[[Any], str]] = {
    int: str,
    float: _text_of_float,
    bool: _text_of_bool,
    datetime: _text_of_datetime,
    date: date.isoformat,
    time: time.isoformat,
    timedelta: str,
}


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    convert = _CELL_TEXT.get(type(value))
    return convert(value) if convert is not None else str(value).strip()


def _read_xlsx(path: Path, start_after_row: int) -> Iterator[SheetRow | BadRow]:
    from openpyxl import load_workbook

    name = path.name
    try:
        raw = path.open("rb")  # a file object: openpyxl judges a path by its suffix
    except OSError as exc:
        raise SkippableError(f"{name}: cannot open the file", internal=exc.strerror) from None
    with raw:
        try:
            with warnings.catch_warnings():
                # openpyxl warns about styles and extensions it does not read; not our concern.
                warnings.simplefilter("ignore")
                workbook = load_workbook(raw, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - zipfile, XML and openpyxl errors alike
            raise SkippableError(
                f"{name}: not a readable .xlsx workbook", internal=type(exc).__name__
            ) from None
        yield from _workbook_records(name, workbook, start_after_row)


def _workbook_records(
    name: str, workbook: Any, start_after_row: int
) -> Iterator[SheetRow | BadRow]:
    try:
        sheets = list(workbook.worksheets)
        for index, sheet in enumerate(sheets):
            last = index == len(sheets) - 1
            # The first sheet holding a header is read; later sheets are not, so that one
            # row number is a complete resume position.
            found = yield from _xlsx_records(name, sheet, start_after_row, required=last)
            if found:
                return
        raise SkippableError(f"{name}: workbook has no worksheet")
    except SkippableError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt sheet XML surfaces while iterating
        raise SkippableError(
            f"{name}: corrupt .xlsx worksheet", internal=type(exc).__name__
        ) from None
    finally:
        workbook.close()


def _xlsx_records(
    name: str, sheet: Any, start_after_row: int, *, required: bool
) -> Generator[SheetRow | BadRow, None, bool]:
    """Records of one worksheet; returns whether it had a header (via StopIteration)."""
    title = str(sheet.title)
    sheet.reset_dimensions()  # the stored dimension is often wrong; read what is there
    header: _Header | None = None
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = [_cell_text(v) for v in values]
        if not any(cells):
            continue
        if header is None:
            if _is_header_candidate(cells):
                header = _make_header(cells)
            continue
        if number <= start_after_row:
            continue
        width = header.width
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))  # a missing cell is an empty cell
        elif len(cells) > width:
            if any(cells[width:]):
                yield BadRow(
                    number,
                    "xlsx.column_count",
                    f"{name} sheet {title!r} row {number}: "
                    f"{_width_problem(header, _last_filled(cells), sheet=True)}",
                    _partial_cells(header, cells[: _last_filled(cells)]),
                    title,
                )
                continue
            del cells[width:]
        if cells[0] == header.raw[0] and cells == header.raw:
            continue  # the header repeated
        error_column = _first_error_column(header, values)
        if error_column is not None:
            yield BadRow(
                number,
                "xlsx.cell",
                f"{name} sheet {title!r} row {number}: column {error_column!r} "
                "holds an Excel error value",
                dict(zip(header.names, cells, strict=True)),
                title,
            )
            continue
        yield SheetRow(number, dict(zip(header.names, cells, strict=True)), title)
    if header is None and required:
        raise SkippableError(f"{name}: no header row found")
    return header is not None


def _last_filled(cells: Sequence[str]) -> int:
    n = len(cells)
    while n and not cells[n - 1]:
        n -= 1
    return n


def _first_error_column(header: _Header, values: Sequence[object]) -> str | None:
    for column, value in zip(header.names, values, strict=False):
        if type(value) is str and value in _EXCEL_ERRORS:
            return column
    return None
