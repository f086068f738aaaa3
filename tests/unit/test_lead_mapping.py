"""LeadMapping: header spellings, required columns, LeadCaptured values, dates, derived ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from connectors.spreadsheet.mapping import LeadMapping, normalize_date
from connectors.spreadsheet.reader import SheetRow
from hub.errors import ConfigError
from hub.events import deterministic_id
from hub.settings import REPO_ROOT

DEFAULT_MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
SCHEMA = REPO_ROOT / "schemas" / "sales" / "LeadCaptured.avsc"
SCHEMA_FIELDS = [f["name"] for f in json.loads(SCHEMA.read_text())["fields"]]


@pytest.fixture(scope="module")
def mapping() -> LeadMapping:
    return LeadMapping.load(DEFAULT_MAPPING)


def row(cells: dict[str, str], number: int = 2) -> SheetRow:
    return SheetRow(number, cells)


# -- header spellings (must match / must not match) ---------------------------------------

MUST_MATCH = [
    ("Lead ID", "lead_id"), ("lead_id", "lead_id"), ("LEAD-ID", "lead_id"),
    ("First Name", "first_name"), ("Given name", "first_name"), ("first_name", "first_name"),
    ("Firstname", "first_name"), ("Vorname", "first_name"), ("Prénom", "first_name"),
    ("Last Name", "last_name"), ("Surname ", "last_name"), ("Family name", "last_name"),
    ("E-mail", "email"), ("Email", "email"), ("Email Address", "email"),
    ("e_mail_address", "email"), ("E-Mail-Adresse", "email"),
    ("Phone", "phone"), ("Mobile", "phone"), ("Telephone", "phone"), ("Tel.", "phone"),
    ("Phone Number", "phone"), ("Téléphone", "phone"),
    ("Company", "company"), ("Account Name", "company"), ("Organisation", "company"),
    ("Title", "job_title"), ("Job Title", "job_title"), ("Position", "job_title"),
    ("Country", "country"), ("Country/Region", "country"),
    ("Lead Source", "lead_source"), ("Source", "lead_source"),
    ("Status", "lead_status"), ("Stage", "lead_status"), ("Lead Status", "lead_status"),
    ("Created", "created_on"), ("Created Date", "created_on"), ("Created on", "created_on"),
    ("Date Created", "created_on"),
    ("Owner", "owner"), ("Sales Rep", "owner"), ("Account Manager", "owner"),
    ("Notes", "notes"), ("Comments", "notes"), ("Remarks", "notes"),
]  # fmt: skip

MUST_NOT_MATCH = [
    "Email Opt Out", "Phone Type", "Company Size", "Annual Revenue", "Industry", "Website",
    "Last Activity", "Modified Date", "Lead Score", "Street", "Name", "Full Name", "",
]  # fmt: skip


@pytest.mark.parametrize(("header", "field"), MUST_MATCH)
def test_header_spelling_maps_to_field(mapping: LeadMapping, header: str, field: str) -> None:
    hmap = mapping.resolve([header, "Last Name", "Email"])
    assert hmap.columns[header] == field


@pytest.mark.parametrize("header", MUST_NOT_MATCH)
def test_unknown_header_is_listed_as_unmapped(mapping: LeadMapping, header: str) -> None:
    hmap = mapping.resolve([header, "Last Name", "Email"])
    assert header not in hmap.columns
    assert hmap.unmapped == (header,)


def test_missing_required_columns_name_the_fields(mapping: LeadMapping) -> None:
    with pytest.raises(ConfigError) as info:
        mapping.resolve(["First Name", "Phone", "Company"])
    assert "last_name" in info.value.message
    assert "email" in info.value.message
    assert "\n" not in info.value.message


def test_two_columns_for_one_field_first_spelling_wins_then_falls_back(
    mapping: LeadMapping,
) -> None:
    hmap = mapping.resolve(["Mobile", "Last Name", "Email", "Phone"])
    assert hmap.sources["phone"] == ("Phone", "Mobile")  # mapping order, not sheet order
    both = row({"Mobile": "0151 1234", "Last Name": "Lee", "Email": "a@x.co", "Phone": "030 1"})
    only_mobile = row({"Mobile": "0151 1234", "Last Name": "Lee", "Email": "a@x.co", "Phone": ""})
    assert mapping.apply(hmap, both, source_name="f.csv")["phone"] == "030 1"
    assert mapping.apply(hmap, only_mobile, source_name="f.csv")["phone"] == "0151 1234"


# -- apply --------------------------------------------------------------------------------


def test_apply_returns_every_schema_field_and_none_for_empty(mapping: LeadMapping) -> None:
    headers = ["Lead ID", "Given name", "Surname", "E-mail", "Company", "Notes", "Fax"]
    hmap = mapping.resolve(headers)
    value = mapping.apply(
        hmap,
        row(
            dict(
                zip(headers, ["L-7", "Zoë", "O’Brien", "Zoe@X.co", "", "a\nb", "123"], strict=True)
            )
        ),
        source_name="leads.csv",
    )
    assert list(value) == SCHEMA_FIELDS
    assert value == {
        "lead_id": "L-7", "first_name": "Zoë", "last_name": "O’Brien", "email": "Zoe@X.co",
        "phone": None, "company": None, "job_title": None, "country": None,
        "lead_source": None, "lead_status": None, "created_on": None, "owner": None,
        "notes": "a\nb",
    }  # fmt: skip
    assert hmap.unmapped == ("Fax",)


def test_dates_are_normalized_in_date_fields_only(mapping: LeadMapping) -> None:
    hmap = mapping.resolve(["Last Name", "Email", "Created", "Notes"])
    value = mapping.apply(
        hmap,
        row({"Last Name": "Lee", "Email": "a@x.co", "Created": "45356", "Notes": "45356"}),
        source_name="f.csv",
    )
    assert value["created_on"] == "2024-03-05"
    assert value["notes"] == "45356"


# -- derived ids --------------------------------------------------------------------------


def test_id_derives_from_email_when_the_sheet_has_no_id_column(mapping: LeadMapping) -> None:
    hmap = mapping.resolve(["Last Name", "Email"])
    first = mapping.apply(
        hmap, row({"Last Name": "Lee", "Email": "Ann.Lee@X.co"}), source_name="a.csv"
    )
    again = mapping.apply(
        hmap, row({"Last Name": "Lee-Smith", "Email": "ann.lee@x.co"}, 99), source_name="a.csv"
    )
    other_file = mapping.apply(
        hmap, row({"Last Name": "Lee", "Email": "ann.lee@x.co"}), source_name="b.csv"
    )
    assert first["lead_id"] == deterministic_id("a.csv", "ann.lee@x.co")
    assert again["lead_id"] == first["lead_id"]  # same person, other row, other spelling
    assert other_file["lead_id"] != first["lead_id"]


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {"Lead ID": "", "First Name": "Ann", "Last Name": "Lee", "Email": "A@x.co"},
            deterministic_id("s.csv", "a@x.co"),
            id="empty-id-cell-email",
        ),
        pytest.param(
            {
                "Lead ID": "",
                "First Name": "Ann",
                "Last Name": "Lee",
                "Email": "",
                "Company": "Acme",
            },
            deterministic_id("s.csv", "Ann", "Lee", "Acme"),
            id="no-email-names-and-company",
        ),
        pytest.param(
            {"Lead ID": "", "First Name": "", "Last Name": "", "Email": "", "Company": ""},
            deterministic_id("s.csv", "row 5"),
            id="nothing-identifies-the-person",
        ),
        pytest.param(
            {"Lead ID": "L-1", "First Name": "Ann", "Last Name": "Lee", "Email": "a@x.co"},
            "L-1",
            id="id-cell-kept",
        ),
    ],
)
def test_lead_id(mapping: LeadMapping, cells: dict[str, str], expected: str) -> None:
    hmap = mapping.resolve(list(cells))
    assert mapping.apply(hmap, row(cells, 5), source_name="s.csv")["lead_id"] == expected


# -- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("44927", "2023-01-01"),
        ("44927.0", "2023-01-01"),
        ("44927.75", "2023-01-01"),
        ("45356", "2024-03-05"),
        ("1", "1900-01-01"),
        ("61", "1900-03-01"),
        ("2024-03-05", "2024-03-05"),
        ("2024-03-05T14:30:00", "2024-03-05"),
        ("2024-03-05 14:30", "2024-03-05"),
        ("2024/03/05", "2024-03-05"),
        ("03/05/2024", "2024-03-05"),  # US: month first
        ("3/5/2024", "2024-03-05"),
        ("25/12/2024", "2024-12-25"),  # first part > 12: day first
        ("05.03.2024", "2024-03-05"),  # EU
        ("5.3.24", "2024-03-05"),
        ("05-03-2024", "2024-03-05"),
        ("31.12.99", "1999-12-31"),
        ("20240305", "2024-03-05"),
        # kept as read
        ("next week", "next week"),
        ("", ""),
        ("60", "60"),  # Excel's phantom 1900-02-29
        ("0", "0"),
        ("13/13/2024", "13/13/2024"),
        ("2024-02-30", "2024-02-30"),
        ("31.02.2024", "31.02.2024"),
        ("2024-03-05x", "2024-03-05x"),
        ("1.2.3.4", "1.2.3.4"),
        ("-45356", "-45356"),
        ("45356.5x", "45356.5x"),
        ("99999999", "99999999"),
        ("Q3 2024", "Q3 2024"),
    ],
)
def test_normalize_date(text: str, expected: str) -> None:
    assert normalize_date(text) == expected


# -- loading ------------------------------------------------------------------------------


def test_default_mapping_covers_the_schema(mapping: LeadMapping) -> None:
    assert (mapping.department, mapping.entity, mapping.id_field) == ("sales", "lead", "lead_id")
    assert set(mapping.fields) == set(SCHEMA_FIELDS)
    assert mapping.date_fields == ["created_on"]
    assert set(mapping.required_headers) <= set(mapping.fields)


def base_doc() -> dict[str, object]:
    return {
        "version": "1",
        "department": "sales",
        "entity": "lead",
        "id_field": "lead_id",
        "fields": {"lead_id": ["Lead ID"], "last_name": ["Last Name"], "email": ["Email"]},
        "date_fields": [],
        "required_headers": ["email"],
    }


def doc_with(**changes: object) -> str:
    doc = base_doc()
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("version: [1\n", "invalid YAML at line", id="bad-yaml"),
        pytest.param("- a\n- b\n", "expected a mapping", id="not-a-mapping"),
        pytest.param("", "expected a mapping", id="empty"),
        pytest.param(doc_with(id_field=None), "id_field: Field required", id="missing-key"),
        pytest.param(doc_with(extra_key="x"), "extra_key", id="extra-key"),
        pytest.param(doc_with(fields={"fax": ["Fax"]}), "unknown field(s) fax", id="unknown-field"),
        pytest.param(
            doc_with(fields={"email": ["E-mail"], "phone": ["email"]}),
            "listed for email and phone",
            id="spelling-in-two-fields",
        ),
        pytest.param(doc_with(fields={"email": []}), "no header spellings", id="no-spellings"),
        pytest.param(doc_with(fields={"email": ["--"]}), "has no letters", id="blank-spelling"),
        pytest.param(doc_with(id_field="lead_ref"), "not a LeadCaptured field", id="bad-id-field"),
        pytest.param(
            doc_with(required_headers=["phone"]), "required_headers", id="required-unmapped"
        ),
        pytest.param(doc_with(date_fields=["created_on"]), "date_fields", id="date-unmapped"),
        pytest.param(doc_with(version=" "), "must not be blank", id="blank-version"),
    ],
)
def test_bad_mapping_file_is_one_config_error_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "my_mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        LeadMapping.load(path)
    message = info.value.message
    assert "my_mapping.yaml" in message
    assert problem in message
    assert "\n" not in message


def test_good_minimal_mapping_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(doc_with(), encoding="utf-8")
    assert LeadMapping.load(path).required_headers == ["email"]


def test_missing_mapping_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read"):
        LeadMapping.load(tmp_path / "absent.yaml")


def test_mapping_is_frozen(mapping: LeadMapping) -> None:
    with pytest.raises(ValueError, match="frozen"):
        mapping.version = "2"  # type: ignore[misc]
