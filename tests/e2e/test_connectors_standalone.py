"""`crmhub connectors check|discover|read` as a user runs them: one connector, no Kafka,
Singer messages on stdout."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hub.settings import REPO_ROOT
from tests.e2e.test_cli import crmhub

pytestmark = pytest.mark.e2e

MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"

# Semicolons, a BOM, a quoted field with the delimiter and one with a newline, padding.
MESSY = (
    "\ufeffLead ID;Name;Notes;Email\n"
    'A-1;Ada;"likes; semicolons";ada@example.com\n'
    'A-2;Bob;"two\nlines";bob@example.com\n'
    "A-3; Cy ;plain;cy@example.com\n"
)


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def settled(path: Path) -> Path:
    old = 1_600_000_000
    os.utime(path, (old, old))
    return path


def test_read_without_a_mapping_prints_the_rows_as_a_csv_tool_reads_them(
    tmp_path: Path,
) -> None:
    sheet = tmp_path / "messy.csv"
    sheet.write_text(MESSY, encoding="utf-8")
    settled(sheet)
    run = crmhub("connectors", "read", "spreadsheet", "--path", str(sheet), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = messages(run.stdout)
    assert [m["type"] for m in out] == ["SCHEMA", "RECORD", "RECORD", "RECORD", "STATE"]
    records = [m["record"] for m in out if m["type"] == "RECORD"]
    reference = list(csv.DictReader(io.StringIO(MESSY.lstrip("\ufeff")), delimiter=";"))
    # the connector trims padding; otherwise it reads what the csv module reads
    assert records == [{k: v.strip() for k, v in row.items()} for row in reference]
    assert set(out[0]["schema"]["properties"]) == {"Lead ID", "Name", "Notes", "Email"}


def test_read_with_a_mapping_quarantines_bad_rows_and_resumes_from_state(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_text(
        "Lead ID,First Name,Last Name,Email,Company\n"
        "L-1,Ada,Lovelace,ada@example.com,Engines\n"
        "L-2,Too,Many,tm@example.com,X,Y,Z\n",
        encoding="utf-8",
    )
    (drop / "b.csv").write_text(
        "Lead ID,First Name,Last Name,Email,Company\nL-3,Grace,Hopper,g@navy.mil,Navy\n",
        encoding="utf-8",
    )
    for p in drop.iterdir():
        settled(p)
    args = ("connectors", "read", "spreadsheet", "--set", f"drop.dir={drop}")
    mapped = (*args, "--set", f"mapping={MAPPING}")
    first = crmhub(*mapped, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = messages(first.stdout)
    assert [m["type"] for m in out] == ["SCHEMA", "RECORD", "STATE", "RECORD", "STATE"]
    assert out[0]["key_properties"] == ["lead_id"]
    assert [m["record"]["lead_id"] for m in out if m["type"] == "RECORD"] == ["L-1", "L-3"]
    assert "quarantined a.csv row 3: csv.column_count" in first.stderr
    assert "tm@example.com" not in first.stderr  # reasons never quote a value

    # Hand back the state written after the first file: only the second one is read.
    state = tmp_path / "state.json"
    state.write_text(json.dumps(out[2]), encoding="utf-8")
    resumed = crmhub(*mapped, "--state", str(state), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = messages(resumed.stdout)
    assert [m["record"]["lead_id"] for m in again if m["type"] == "RECORD"] == ["L-3"]

    # The final state: nothing left to read.
    state.write_text(first.stdout, encoding="utf-8")  # a whole Singer stream: last STATE wins
    done = crmhub(*mapped, "--state", str(state), cwd=tmp_path)
    assert [m for m in messages(done.stdout) if m["type"] == "RECORD"] == []


def test_discover_prints_a_singer_catalog(tmp_path: Path) -> None:
    definition = tmp_path / "emea.yaml"  # a definition as `crmhub connectors create -f` takes
    definition.write_text(
        f"name: emea-leads\nconfig:\n  connector.class: spreadsheet\n"
        f"  drop.dir: {tmp_path}\n  mapping: {MAPPING}\n",
        encoding="utf-8",
    )
    run = crmhub("connectors", "discover", "spreadsheet", "-c", str(definition), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    (stream,) = catalog["streams"]
    assert stream["tap_stream_id"] == "leads"
    assert stream["key_properties"] == ["lead_id"]
    props = stream["schema"]["properties"]
    assert props["email"]["type"] == ["string", "null"]
    assert props["email"]["x-pii"] == "EMAIL_ADDRESS"
    assert stream["metadata"][0]["metadata"]["topic"] == "crm.raw.sales.leads.v1"


def test_check_names_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    missing = crmhub("connectors", "check", "spreadsheet", "--path", "nope.csv", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: connector spreadsheet: no file at path nope.csv"
    ]
    unknown = crmhub("connectors", "check", "no-such-plugin", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unknown connector plugin 'no-such-plugin'; known: " in unknown.stderr
    assert "spreadsheet (connectors.spreadsheet.connector.SpreadsheetConnector)" in unknown.stderr
    sheet = tmp_path / "ok.csv"
    sheet.write_text(MESSY, encoding="utf-8")
    ok = crmhub("connectors", "check", "spreadsheet", "--path", str(sheet), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
