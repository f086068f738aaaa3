"""read_sheet on the mess real sales exports hold; every file is written here, in tmp_path."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from connectors.spreadsheet.reader import BadRow, SheetRow, fingerprint, read_sheet
from hub.errors import SkippableError

Item = SheetRow | BadRow


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path, start_after_row: int = 0) -> list[Item]:
    return list(read_sheet(path, start_after_row=start_after_row))


def sheet_rows(items: list[Item]) -> list[SheetRow]:
    rows = [i for i in items if isinstance(i, SheetRow)]
    assert len(rows) == len(items), items
    return rows


def rows_of(items: list[Item]) -> list[tuple[int, dict[str, str]]]:
    return [(i.row, i.cells) for i in sheet_rows(items)]


# -- encodings ----------------------------------------------------------------------------

ENCODED = "Name;Company;Notes\nMüller;Café “Zoë” Ltd;Price 12 € – O’Brien\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xef\xbb\xbf" + ENCODED.encode("utf-8"), id="utf-8-bom"),
        pytest.param(ENCODED.encode("utf-8"), id="utf-8"),
        pytest.param(ENCODED.encode("cp1252"), id="windows-1252"),
        pytest.param(ENCODED.encode("utf-16"), id="utf-16-bom"),
    ],
)
def test_encodings_decode_to_the_same_text(tmp_path: Path, data: bytes) -> None:
    items = read(write(tmp_path, "leads.csv", data))
    assert rows_of(items) == [
        (2, {"Name": "Müller", "Company": "Café “Zoë” Ltd", "Notes": "Price 12 € – O’Brien"})
    ]


def test_bom_does_not_stick_to_the_first_header(tmp_path: Path) -> None:
    items = read(write(tmp_path, "bom.csv", b"\xef\xbb\xbfLead ID,Email\n1,a@b.co\n"))
    assert [i.cells for i in sheet_rows(items)] == [{"Lead ID": "1", "Email": "a@b.co"}]


def test_cp1252_lines_in_an_otherwise_utf8_file(tmp_path: Path) -> None:
    data = "Name,City\nZoë,Köln\n".encode() + "José,Málaga\n".encode("cp1252")
    items = read(write(tmp_path, "mixed.csv", data))
    assert [i.cells["Name"] for i in sheet_rows(items)] == [
        "Zoë",
        "José",
    ]


def test_bytes_neither_utf8_nor_cp1252_make_a_decode_bad_row(tmp_path: Path) -> None:
    data = b"Name,City\nAnn,Oslo\nBad\x81name,Rome\nBob,Lima\n"
    items = read(write(tmp_path, "undecodable.csv", data))
    assert [type(i).__name__ for i in items] == ["SheetRow", "BadRow", "SheetRow"]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.row, bad.rule_id) == (3, "csv.decode")
    assert bad.cells is not None
    assert bad.cells["City"] == "Rome"
    assert "Rome" not in bad.message
    assert "undecodable.csv" in bad.message


# -- delimiters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a;b;c\n1;2;3\n", ["1", "2", "3"], id="semicolon"),
        pytest.param("a,b,c\n1,2,3\n", ["1", "2", "3"], id="comma"),
        pytest.param("a\tb\tc\n1\t2\t3\n", ["1", "2", "3"], id="tab"),
        pytest.param('a,b,c\n1,2,"x;y;z;w"\n', ["1", "2", "x;y;z;w"], id="comma-with-semicolons"),
        pytest.param('a;b;c\n1;2;"x, y, z"\n', ["1", "2", "x, y, z"], id="semicolon-with-commas"),
        pytest.param("a;b;c\n", None, id="header-only"),
        pytest.param("a,b|c\n1,2|3\n", ["1", "2|3"], id="pipe-is-not-a-delimiter"),
    ],
)
def test_delimiter_is_sniffed(tmp_path: Path, text: str, expected: list[str] | None) -> None:
    items = read(write(tmp_path, "d.csv", text.encode()))
    if expected is None:
        assert items == []
        return
    (item,) = items
    assert isinstance(item, SheetRow)
    assert list(item.cells.values()) == expected


def test_delimiter_counted_in_header_when_sniffer_is_misled(tmp_path: Path) -> None:
    # Notes full of ';' mislead a sniffer looking at the whole sample; the header decides.
    lines = ["Name,Email,Notes"] + [f'P{i},p{i}@x.co,"a;b;c;d;e;f"' for i in range(30)]
    items = read(write(tmp_path, "notes.csv", "\n".join(lines).encode()))
    assert len(items) == 30
    first = sheet_rows(items)[0]
    assert first.cells == {"Name": "P0", "Email": "p0@x.co", "Notes": "a;b;c;d;e;f"}


# -- layout mess --------------------------------------------------------------------------


def test_quoted_newlines_keep_physical_row_numbers(tmp_path: Path) -> None:
    text = (
        'Name,Notes\r\nAnn,"line 1\r\nline 2\r\nline 3"\r\nBob,plain\r\n\r\nCid,"x\ny"\r\nDan,z\r\n'
    )
    items = read(write(tmp_path, "nl.csv", text.encode()))
    assert rows_of(items) == [
        (2, {"Name": "Ann", "Notes": "line 1\r\nline 2\r\nline 3"}),
        (5, {"Name": "Bob", "Notes": "plain"}),
        (7, {"Name": "Cid", "Notes": "x\ny"}),
        (9, {"Name": "Dan", "Notes": "z"}),
    ]


def test_blank_rows_title_rows_and_repeated_header_are_skipped(tmp_path: Path) -> None:
    text = (
        "\n"  # 1 blank line
        ";;;\n"  # 2 a row of empty cells
        "Sales leads export;;;\n"  # 3 a title row (one filled cell)
        " Lead ID ; Name ;Email ; Notes\n"  # 4 header, with stray spaces
        "1; Ann  ;ann@x.co;\n"  # 5
        "   \n"  # 6 whitespace only
        ";  ;;\n"  # 7 empty cells with spaces
        "Lead ID;Name;Email;Notes\n"  # 8 header again
        "2;Bob;bob@x.co;hi \n"  # 9
        "\n"
    )
    items = read(write(tmp_path, "layout.csv", text.encode()))
    assert rows_of(items) == [
        (5, {"Lead ID": "1", "Name": "Ann", "Email": "ann@x.co", "Notes": ""}),
        (9, {"Lead ID": "2", "Name": "Bob", "Email": "bob@x.co", "Notes": "hi"}),
    ]


def test_header_names_made_unique_and_trailing_empty_headers_dropped(tmp_path: Path) -> None:
    text = "Phone,,Phone,Email,,\n1,2,3,4,,\n"
    (item,) = read(write(tmp_path, "dups.csv", text.encode()))
    assert isinstance(item, SheetRow)
    assert item.cells == {"Phone": "1", "column_2": "2", "Phone (2)": "3", "Email": "4"}


def test_classic_mac_line_ends(tmp_path: Path) -> None:
    items = read(write(tmp_path, "mac.csv", b"Name,City\rAnn,Oslo\rBob,Lima\r"))
    assert rows_of(items) == [
        (2, {"Name": "Ann", "City": "Oslo"}),
        (3, {"Name": "Bob", "City": "Lima"}),
    ]


# -- column count -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "1,Ann,ann@x.co,extra",
            {"Id": "1", "Name": "Ann", "Email": "ann@x.co", "_col4": "extra"},
            id="more",
        ),
        pytest.param("1,Ann", {"Id": "1", "Name": "Ann"}, id="fewer"),
        pytest.param(
            "1,,,,x",
            {"Id": "1", "Name": "", "Email": "", "_col4": "", "_col5": "x"},
            id="more-filled-late",
        ),
    ],
)
def test_wrong_column_count_is_a_bad_row(
    tmp_path: Path, line: str, expected: dict[str, str]
) -> None:
    text = f"Id,Name,Email\n0,Zed,z@x.co\n{line}\n2,Bob,bob@x.co\n"
    items = read(write(tmp_path, "count.csv", text.encode()))
    assert [type(i).__name__ for i in items] == ["SheetRow", "BadRow", "SheetRow"]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.row, bad.rule_id, bad.sheet) == (3, "csv.column_count", None)
    assert bad.cells == expected
    assert "count.csv" in bad.message
    assert "row 3" in bad.message
    for value in ("Ann", "ann@x.co", "extra"):
        assert value not in bad.message


def test_trailing_empty_cells_past_the_header_are_fine(tmp_path: Path) -> None:
    (item,) = read(write(tmp_path, "trail.csv", b"Id,Name\n1,Ann,,  ,\n"))
    assert isinstance(item, SheetRow)
    assert item.cells == {"Id": "1", "Name": "Ann"}


def test_multiline_bad_row_names_its_line_span(tmp_path: Path) -> None:
    text = 'Id,Notes\n1,"a\nb",x\n2,ok\n'
    items = read(write(tmp_path, "span.csv", text.encode()))
    bad, good = items
    assert isinstance(bad, BadRow)
    assert isinstance(good, SheetRow)
    assert bad.row == 2
    assert "rows 2-3" in bad.message
    assert good.row == 4


def test_unparseable_record_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    huge = "x" * 200_000  # past csv's field size limit
    text = f'Id,Notes\n1,ok\n2,"{huge}"\n3,fine\n'
    items = read(write(tmp_path, "huge.csv", text.encode()))
    assert [(type(i).__name__, i.row) for i in items] == [
        ("SheetRow", 2),
        ("BadRow", 3),
        ("SheetRow", 4),
    ]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert bad.rule_id == "csv.parse"


# -- resuming -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_after", "expected_rows"),
    [
        (0, [4, 5, 8, 10]),
        (3, [4, 5, 8, 10]),
        (4, [5, 8, 10]),
        (6, [8, 10]),
        (8, [10]),
        (10, []),
        (99, []),
    ],
)
def test_start_after_row_resumes_after_the_acknowledged_row(
    tmp_path: Path, start_after: int, expected_rows: list[int]
) -> None:
    text = '\n\nId,Notes\n1,a\n2,"multi\nline"\nId,Notes\n3,x,y\n\n4,d\n'
    items = read(write(tmp_path, "resume.csv", text.encode()), start_after_row=start_after)
    assert [i.row for i in items] == expected_rows
    if 8 in expected_rows:  # the line with one cell too many
        bad = items[expected_rows.index(8)]
        assert isinstance(bad, BadRow)
    assert all(set(i.cells) == {"Id", "Notes"} for i in items if isinstance(i, SheetRow))


# -- files that cannot be read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("empty.csv", b"", id="empty"),
        pytest.param("blank.csv", b"\n\r\n  \n;;;\n", id="only-blank-lines"),
        pytest.param("title.csv", b"Just a title\nand a note\n", id="no-row-with-two-cells"),
        pytest.param("report.pdf", b"%PDF-1.7\n", id="not-a-sheet"),
        pytest.param("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, id="legacy-xls"),
        pytest.param("fake.xlsx", b"Name,Email\nAnn,a@x.co\n", id="xlsx-not-zip"),
        pytest.param("broken.xlsx", b"PK\x03\x04" + b"\x00garbage" * 20, id="corrupt-zip"),
        pytest.param("binary.csv", b"Name,Email\n\x00\x01\x02\x00", id="binary-csv"),
    ],
)
def test_unreadable_file_raises_skippable_naming_the_file(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(SkippableError) as info:
        read(path)
    assert name in info.value.message
    assert "Ann" not in info.value.message
    assert "garbage" not in info.value.message


def test_missing_file_is_skippable(tmp_path: Path) -> None:
    with pytest.raises(SkippableError, match=r"gone\.csv"):
        read(tmp_path / "gone.csv")


def test_fingerprint_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    data = b"Id,Name\n1,Ann\n" * 50_000
    path = write(tmp_path, "fp.csv", data)
    assert fingerprint(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data + b"2,Bob\n")
    assert fingerprint(path) != hashlib.sha256(data).hexdigest()


# -- XLSX ---------------------------------------------------------------------------------


def make_xlsx(path: Path, rows: Mapping[int, Sequence[object]], *, title: str = "Leads") -> Path:
    """Cells written at their sheet row; rows not given stay absent from the file."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    for number, values in rows.items():
        for col, value in enumerate(values, start=1):
            if value is not None:
                ws.cell(row=number, column=col, value=value)
    wb.save(path)
    return path


HEADER = [" Lead ID ", "Phone", "Created", "Score", "Active"]


def test_xlsx_values_come_out_as_text(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "leads.xlsx",
        {
            3: HEADER,  # rows 1-2 blank (absent)
            4: ["L-1", 4155550100.0, date(2024, 3, 5), 12.5, True],
            5: ["L-2", 4155550101, datetime(2024, 3, 5, 14, 30), 7.0, False],
            6: ["  L-3  ", "+1 415 555 0102", 45356, None, None],
            8: ["L-4", "(415) 555-0103"],  # row 7 blank; short row padded
        },
    )
    items = sheet_rows(read(path))
    assert all(i.sheet == "Leads" for i in items)
    assert [i.row for i in items] == [4, 5, 6, 8]
    assert [list(i.cells.values()) for i in items] == [
        ["L-1", "4155550100", "2024-03-05", "12.5", "TRUE"],
        ["L-2", "4155550101", "2024-03-05T14:30:00", "7", "FALSE"],
        ["L-3", "+1 415 555 0102", "45356", "", ""],
        ["L-4", "(415) 555-0103", "", "", ""],
    ]
    assert all(list(i.cells) == ["Lead ID", "Phone", "Created", "Score", "Active"] for i in items)


def test_xlsx_repeated_header_blank_rows_and_resume(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "concat.xlsx",
        {
            2: HEADER,
            3: ["L-1", "1", None, None, None],
            5: ["Lead ID", "Phone", "Created", "Score", "Active"],
            6: ["L-2", "2", None, None, None],
            7: ["", " ", None, None, None],
            9: ["L-3", "3", None, None, None],
        },
    )
    assert [i.row for i in read(path)] == [3, 6, 9]
    assert [i.row for i in read(path, start_after_row=3)] == [6, 9]
    assert [i.row for i in read(path, start_after_row=8)] == [9]
    assert read(path, start_after_row=9) == []


def test_xlsx_data_past_the_header_and_error_cells_are_bad_rows(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "bad.xlsx",
        {
            1: ["Id", "Email", "Phone"],
            2: ["1", "ann@x.co", "1", None, "stray"],
            3: ["2", "#N/A", "2"],
            4: ["3", "cid@x.co", "3"],
        },
    )
    first, second, third = read(path)
    assert isinstance(first, BadRow)
    assert isinstance(second, BadRow)
    assert (first.row, first.rule_id, first.sheet) == (2, "xlsx.column_count", "Leads")
    assert first.cells == {
        "Id": "1",
        "Email": "ann@x.co",
        "Phone": "1",
        "_col4": "",
        "_col5": "stray",
    }
    assert (second.row, second.rule_id) == (3, "xlsx.cell")
    assert "'Email'" in second.message
    for bad in (first, second):
        assert "ann@x.co" not in bad.message
        assert "stray" not in bad.message
    assert isinstance(third, SheetRow)
    assert third.row == 4


def test_xlsx_blank_first_sheet_falls_through_to_the_next(tmp_path: Path) -> None:
    wb = Workbook()
    cover = wb.active
    assert cover is not None
    cover.title = "Cover"
    data = wb.create_sheet("Data")
    data.append(["Id", "Email"])
    data.append(["1", "a@x.co"])
    path = tmp_path / "two.xlsx"
    wb.save(path)
    (item,) = read(path)
    assert isinstance(item, SheetRow)
    assert (item.row, item.sheet, item.cells) == (2, "Data", {"Id": "1", "Email": "a@x.co"})


def test_xlsx_without_header_is_skippable(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "empty.xlsx", {2: ["only one cell"]})
    with pytest.raises(SkippableError, match=r"empty\.xlsx: no header"):
        read(path)


def test_xlsx_renamed_as_csv_is_read_as_a_workbook(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "renamed.csv", {1: ["Id", "Email"], 2: ["1", "a@x.co"]})
    (item,) = read(path)
    assert isinstance(item, SheetRow)
    assert item.sheet == "Leads"
