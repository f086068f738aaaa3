"""The spreadsheet connector runs the connector contract (hub.sdk.testing) on a real drop
directory holding messy CSV and XLSX exports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import openpyxl
import pytest

from connectors.spreadsheet.reader import fingerprint
from hub.errors import ConfigError
from hub.sdk.testing import ConnectorContract, ContractFailure, ContractSource
from hub.settings import REPO_ROOT

MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"

EMEA = (
    "\ufeffLead ID;First Name;Last Name;Email;Phone;Company;Country\n"
    "E-1;Ada;Lovelace;ada@example.com;+44 20 7946 0000;Engines;GB\n"
    'E-2;Émile;Zola;"ez@example.fr";+33 1 23 45 67 89;"Rougon;Macquart";FR\n'
    "E-3;Bad;Row;bad@example.com;1;2;3;4;5\n"
    "\n"
    "E-4;Grace;Hopper;grace@navy.mil;212 555 0199;Navy;US\n"
)


def write_xlsx(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Trade show leads"])
    ws.append(["Lead ID", "First Name", "Last Name", "Email", "Phone", "Company", "Created"])
    ws.append(
        ["X-1", "Alan", "Turing", "alan@example.co.uk", "+1 604 555 0123", "Bletchley", 45000]
    )
    ws.append(["Lead ID", "First Name", "Last Name", "Email", "Phone", "Company", "Created"])
    ws.append(["X-2", "Katherine", "Johnson", "kj@example.org", "4155550126", "NASA", 45001])
    wb.save(path)


class TestSpreadsheetContract(ConnectorContract):
    plugin = "spreadsheet"

    @pytest.fixture
    def source(self, tmp_path: Path) -> ContractSource:
        drop = tmp_path / "drop"
        drop.mkdir()
        (drop / "emea.csv").write_text(EMEA, encoding="utf-8")
        write_xlsx(drop / "shows.xlsx")
        old = 1_600_000_000  # settled long ago
        for p in drop.iterdir():
            os.utime(p, (old, old))
        emea, shows = fingerprint(drop / "emea.csv")[:16], fingerprint(drop / "shows.xlsx")[:16]
        good = {f"emea.csv@{emea}:{row}" for row in (2, 3, 6)}
        good |= {f"shows.xlsx@{shows}:{row}" for row in (3, 5)}
        return ContractSource(
            config={
                "connector.class": "spreadsheet",
                "name": "contract-leads",
                "drop.dir": str(drop),
                "mapping": str(MAPPING),
            },
            good_ids=good,
            bad=1,
            values_with={"bad email": "bad@example.com"},
        )

    @pytest.fixture
    def failures(self, tmp_path: Path) -> list[ContractFailure]:
        gone = tmp_path / "gone"
        gone.mkdir()
        broken_mapping = tmp_path / "mapping.yaml"
        broken_mapping.write_text("fields: [not, a, mapping]\n", encoding="utf-8")
        base = {"connector.class": "spreadsheet", "name": "contract-failing"}
        return [
            ContractFailure(
                "drop directory removed",
                {**base, "drop.dir": str(gone), "mapping": str(MAPPING)},
                ConfigError,
                arrange=lambda: shutil.rmtree(gone),
            ),
            ContractFailure(
                "mapping file that is not a mapping",
                {**base, "drop.dir": str(tmp_path), "mapping": str(broken_mapping)},
                ConfigError,
            ),
        ]
