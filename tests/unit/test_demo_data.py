"""The demo sample reads back through read_sheet + the default mapping exactly as promised:
every record accounted for, only the deliberate breakage unreadable, the planned share of
invalid rows and updates, cp1252 names intact, dates ISO, valid phones valid."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email

from connectors.spreadsheet.mapping import LeadMapping
from connectors.spreadsheet.reader import BadRow, SheetRow, read_sheet
from hub.demo_data import (
    EMEA_CSV,
    MAX_COMPANY_LENGTH,
    TRADE_SHOWS_XLSX,
    US_CSV,
    DemoFile,
    DemoManifest,
    generate_demo_files,
)
from hub.settings import REPO_ROOT

ROWS = 12_000
MAPPING = LeadMapping.load(
    REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
)


@dataclass
class ReadBack:
    file: DemoFile
    rows: list[SheetRow]
    bad: list[BadRow]
    values: list[dict[str, str | None]]


@dataclass
class Sample:
    dest: Path
    manifest: DemoManifest
    files: dict[str, ReadBack]


def read_back(dest: Path, file: DemoFile) -> ReadBack:
    rows: list[SheetRow] = []
    bad: list[BadRow] = []
    for item in read_sheet(dest / file.name):
        (rows if isinstance(item, SheetRow) else bad).append(item)  # type: ignore[arg-type]
    hmap = MAPPING.resolve(list(rows[0].cells))
    assert hmap.unmapped == ()
    values = [MAPPING.apply(hmap, r, source_name=file.name) for r in rows]
    return ReadBack(file, rows, bad, values)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    dest = tmp_path_factory.mktemp("demo")
    manifest = generate_demo_files(dest, rows=ROWS)
    files = {f.name: read_back(dest, f) for f in manifest.files}
    return Sample(dest, manifest, files)


def defect(value: dict[str, str | None]) -> str | None:
    """The validation rules the sample breaks on purpose; None for a valid lead."""
    email = value["email"] or ""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return "email"
    try:
        number = phonenumbers.parse(value["phone"] or "", value["country"])
        if not phonenumbers.is_valid_number(number):
            return "phone"
    except phonenumbers.NumberParseException:
        return "phone"
    if not value["last_name"]:
        return "last_name"
    if len(value["company"] or "") > 120:
        assert len(value["company"] or "") > MAX_COMPANY_LENGTH  # past the CRM's 255 too
        return "company"
    return None


# How fast generation is belongs to the demo's own timing, not to an assertion that a
# loaded machine breaks (it did: 4.6 s against 3.0 while CI shared the cores).
def test_the_manifest_adds_up(sample: Sample) -> None:
    m = sample.manifest
    assert [(f.name, f.fmt) for f in m.files] == [
        (EMEA_CSV, "csv"),
        (US_CSV, "csv"),
        (TRADE_SHOWS_XLSX, "xlsx"),
    ]
    assert m.total_rows == ROWS == sum(f.rows for f in m.files)
    assert sorted(p.name for p in sample.dest.iterdir()) == sorted(f.name for f in m.files)


def test_every_record_reads_back_as_a_row_or_a_bad_row(sample: Sample) -> None:
    for rb in sample.files.values():
        assert len(rb.rows) + len(rb.bad) == rb.file.rows, rb.file.name


def test_bad_rows_are_only_the_deliberately_broken_ones(sample: Sample) -> None:
    total = 0
    for rb in sample.files.values():
        assert len(rb.bad) == rb.file.unreadable_rows, rb.file.name
        assert all(b.rule_id == "csv.column_count" for b in rb.bad)
        total += len(rb.bad)
    assert sample.files[TRADE_SHOWS_XLSX].bad == []
    assert 0.001 * ROWS <= total <= 0.004 * ROWS


def test_invalid_rows_are_about_eight_percent_one_of_each_kind(sample: Sample) -> None:
    kinds: Counter[str] = Counter()
    for rb in sample.files.values():
        found = [d for v in rb.values if (d := defect(v)) is not None]
        assert len(found) == rb.file.invalid_rows, rb.file.name
        kinds.update(found)
    assert 0.07 * ROWS <= sum(kinds.values()) <= 0.09 * ROWS
    assert set(kinds) == {"email", "phone", "last_name", "company"}
    assert min(kinds.values()) > 0.15 * sum(kinds.values())


def test_updates_repeat_an_earlier_lead_with_a_new_status(sample: Sample) -> None:
    total = 0
    for rb in sample.files.values():
        seen: dict[str, str | None] = {}
        repeats = 0
        for value in rb.values:
            lead_id = value["lead_id"]
            assert lead_id
            if lead_id in seen:
                repeats += 1
                assert defect(value) is None
                assert value["lead_status"] != seen[lead_id]
            seen[lead_id] = value["lead_status"]
        assert repeats == rb.file.updates, rb.file.name
        total += repeats
    assert 0.04 * ROWS <= total <= 0.06 * ROWS


def test_cp1252_file_is_really_cp1252_and_names_round_trip(sample: Sample) -> None:
    raw = (sample.dest / US_CSV).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "O’Brien".encode("cp1252") in raw
    names = {v[k] for v in sample.files[US_CSV].values for k in ("first_name", "last_name")}
    assert {"José", "Zoë", "O’Brien"} <= names


def test_no_mojibake_anywhere(sample: Sample) -> None:
    for rb in sample.files.values():
        for value in rb.values:
            for text in value.values():
                assert text is None or not any(ch in text for ch in "\ufffdÃâ"), rb.file.name


def test_emea_csv_is_utf8_bom_semicolon_with_european_dates(sample: Sample) -> None:
    raw = (sample.dest / EMEA_CSV).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = sample.files[EMEA_CSV].rows
    assert "Given name" in rows[0].cells
    assert "E-mail" in rows[0].cells
    created = [r.cells["Created on"] for r in rows]
    assert sum(c[2] == "." for c in created) > 0.8 * len(created)
    assert any(not c.isascii() for r in rows for c in r.cells.values())  # UTF-8 text present
    assert any("\n" in r.cells["Remarks"] for r in rows)  # quoted newlines


def test_all_dates_come_out_iso(sample: Sample) -> None:
    for rb in sample.files.values():
        for value in rb.values:
            created = value["created_on"]
            assert created is not None
            assert date.fromisoformat(created).isoformat() == created


def test_xlsx_holds_date_cells_and_raw_serials(sample: Sample) -> None:
    raw_created = [r.cells["Created"] for r in sample.files[TRADE_SHOWS_XLSX].rows]
    serials = [c for c in raw_created if c.isdigit()]
    iso_dates = [c for c in raw_created if len(c) == 10 and c[4] == "-"]
    datetimes = [c for c in raw_created if "T" in c]
    assert serials
    assert iso_dates
    assert datetimes
    assert len(serials) + len(iso_dates) + len(datetimes) == len(raw_created)


def test_xlsx_phones_typed_as_numbers_come_out_without_decimal(sample: Sample) -> None:
    phones = [r.cells["Mobile"] for r in sample.files[TRADE_SHOWS_XLSX].rows]
    assert any(p.isdigit() and len(p) == 10 for p in phones)
    assert not any(p.endswith(".0") for p in phones)


def test_phone_formats_are_mixed(sample: Sample) -> None:
    phones = {v["phone"] or "" for rb in sample.files.values() for v in rb.values}
    assert any(p.startswith("(") for p in phones)
    assert any(p.count(".") == 2 for p in phones)
    assert any(p.startswith("+1 ") for p in phones)
    assert any(p.startswith("+44 20 7946") for p in phones)
    assert any(p.startswith("030 ") for p in phones)


def test_same_seed_same_sample_other_seed_other_sample(sample: Sample, tmp_path: Path) -> None:
    again = generate_demo_files(tmp_path / "again", rows=ROWS)
    assert again == sample.manifest
    for name in (EMEA_CSV, US_CSV):
        assert (tmp_path / "again" / name).read_bytes() == (sample.dest / name).read_bytes()
    xlsx_again = read_back(tmp_path / "again", again.files[2])
    assert xlsx_again.rows == sample.files[TRADE_SHOWS_XLSX].rows
    other = generate_demo_files(tmp_path / "other", rows=ROWS, seed=8)
    assert (tmp_path / "other" / US_CSV).read_bytes() != (sample.dest / US_CSV).read_bytes()
    assert other.total_rows == ROWS


@pytest.mark.parametrize("rows", [3, 50, 1_001])
def test_small_samples_add_up(tmp_path: Path, rows: int) -> None:
    manifest = generate_demo_files(tmp_path, rows=rows)
    assert manifest.total_rows == rows
    for file in manifest.files:
        rb = read_back(tmp_path, file)
        assert len(rb.rows) + len(rb.bad) == file.rows


def test_too_few_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 3"):
        generate_demo_files(tmp_path, rows=2)
