"""The HR connectors run the connector contract (hub.sdk.testing):

- ``bamboohr`` against the BambooHR simulator (a real uvicorn server on 127.0.0.1) holding a
  seeded company: ties in lastChanged (a bulk import of 20 employees in one second), bad
  dates to quarantine, deleted employees that become erasure events;
- ``hris-export`` on a real drop directory holding a messy CSV and an XLSX export with columns
  the minimisation policy does not allow."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from connectors.bamboohr.simdata import Company, generate_company
from connectors.bamboohr.simulator import Faults, Simulator, SimulatorServer
from connectors.spreadsheet.reader import fingerprint
from hub.broker import free_port
from hub.errors import ConfigError, FatalError, RetriableError
from hub.sdk.testing import ConnectorContract, ContractFailure, ContractSource
from hub.settings import REPO_ROOT

pytestmark = pytest.mark.integration

KEY = "contract-key"
FAST = {
    "attempts": "3",
    "backoff.seconds": "0.01",
    "read.timeout.seconds": "2",
    "max.wait.seconds": "2",
}


def stamp(company: Company, employee_id: str) -> str:
    return company.changes[employee_id].last_changed.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    company = generate_company(seed=11, count=120, bad_share=0.05)
    sim = Simulator(company, api_keys={KEY: "ok", "revoked-key": "revoked", "no-access": "denied"})
    with SimulatorServer(sim).running() as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer) -> Simulator:
    server.simulator.faults = Faults()
    return server.simulator


class TestBambooHRContract(ConnectorContract):
    plugin = "bamboohr"

    @pytest.fixture
    def source(self, server: SimulatorServer, sim: Simulator) -> ContractSource:
        company = sim.company
        good = {
            f"employees:{i}:{stamp(company, i)}" for i in company.live_ids() if i not in company.bad
        }
        good |= {f"employee_erasures:{i}:{stamp(company, i)}" for i in company.deleted_ids()}
        assert company.bad, "the seed must hold bad rows"
        assert company.deleted_ids(), "the seed must hold deleted employees"
        bad_values = {
            f"{field} of {i}": company.employees[i][field]
            for i in company.bad
            for field in ("hireDate", "terminationDate", "lastName", "workEmail")
        }
        return ContractSource(
            config={
                "connector.class": "bamboohr",
                "name": "contract-hr",
                "company.domain": "acme",
                "api.key": KEY,
                "base.url": server.gateway_url(),
                **FAST,
            },
            good_ids=good,
            bad=len(company.bad),
            values_with=bad_values,
        )

    @pytest.fixture
    def failures(self, server: SimulatorServer, sim: Simulator) -> list[ContractFailure]:
        def config(**extra: str) -> dict[str, str]:
            base = {
                "connector.class": "bamboohr",
                "name": "contract-hr-failing",
                "company.domain": "acme",
                "api.key": KEY,
                "base.url": server.gateway_url(),
                **FAST,
            }
            return {**base, **extra}

        def faults(**knobs: object) -> None:
            sim.faults = Faults(**knobs)  # type: ignore[arg-type]

        broken_policy = REPO_ROOT / "schemas" / "hr" / "EmployeeErased.avsc"  # not a policy
        return [
            ContractFailure("unknown API key", config(**{"api.key": "nope"}), FatalError),
            ContractFailure("revoked API key", config(**{"api.key": "revoked-key"}), FatalError),
            ContractFailure("user lost access", config(**{"api.key": "no-access"}), FatalError),
            ContractFailure(
                "unknown company",
                config(**{"base.url": f"{server.url}/api/gateway.php/x/"}),
                FatalError,
            ),
            ContractFailure(
                "server stays down",
                config(),
                RetriableError,
                arrange=lambda: faults(down=503),
            ),
            ContractFailure(
                "server keeps answering 429 (Retry-After longer than the client waits)",
                config(),
                RetriableError,
                arrange=lambda: faults(rate_limit=0, rate_window=60),
            ),
            ContractFailure(
                "nothing listens",
                config(**{"base.url": f"http://127.0.0.1:{free_port()}/api/"}),
                RetriableError,
                arrange=faults,
            ),
            ContractFailure("policy unreadable", config(policy=str(broken_policy)), ConfigError),
        ]


# -- the HRIS export drop ---------------------------------------------------------------

EXPORT_CSV = (
    "\ufeffEEID;Employee #;First Name;Last Name;Work Email;SSN;Date of Birth;Salary;"
    "Department;Hire Date;Status\n"
    "101;E00101;Ada;Lovelace;ada@example.com;123-45-6789;1815-12-10;120000;Engineering;"
    "03/01/2019;Active\n"
    "102;E00102;Grace;Hopper;grace@example.com;234-56-7890;1906-12-09;130000;Engineering;"
    "2018-07-15;Active\n"
    "103;E00103;Bad;Date;bad.date@example.com;345-67-8901;1950-01-01;1;Sales;someday;Active\n"
    "104;E00104;Too;Many;too.many@example.com;1;2;3;4;5;6;7;8\n"
    ";E00105;No;Id;no.id@example.com;456-78-9012;1960-01-01;1;Sales;2020-01-01;Active\n"
    "106;E00106;Alan;Turing;alan@example.co.uk;567-89-0123;1912-06-23;90000;Research;"
    "2021-02-01;Inactive\n"
)


def write_export_xlsx(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["People export"])
    ws.append(["Employee ID", "First Name", "Last Name", "Home Address", "Job Title", "Start Date"])
    ws.append(["201", "Katherine", "Johnson", "1 Langley Road", "Mathematician", 45000])
    ws.append(["202", "Dorothy", "Vaughan", "2 Langley Road", "Supervisor", 45001])
    wb.save(path)


class TestHrisExportContract(ConnectorContract):
    plugin = "hris-export"

    @pytest.fixture
    def source(self, tmp_path: Path) -> ContractSource:
        drop = tmp_path / "drop"
        drop.mkdir()
        (drop / "people.csv").write_text(EXPORT_CSV, encoding="utf-8")
        write_export_xlsx(drop / "people.xlsx")
        for p in drop.iterdir():
            os.utime(p, (1_600_000_000, 1_600_000_000))
        csv_fp = fingerprint(drop / "people.csv")[:16]
        xlsx_fp = fingerprint(drop / "people.xlsx")[:16]
        good = {f"people.csv@{csv_fp}:{row}" for row in (2, 3, 7)}
        good |= {f"people.xlsx@{xlsx_fp}:{row}" for row in (3, 4)}
        return ContractSource(
            config={
                "connector.class": "hris-export",
                "name": "contract-hr-files",
                "drop.dir": str(drop),
            },
            good_ids=good,
            bad=3,  # a bad date, a wrong column count, a row without an employee id
            values_with={
                "ssn": "345-67-8901",
                "bad date": "someday",
                "name": "bad.date@example.com",
                "no id": "no.id@example.com",
            },
        )

    @pytest.fixture
    def failures(self, tmp_path: Path) -> list[ContractFailure]:
        gone = tmp_path / "gone"
        gone.mkdir()
        bad_policy = tmp_path / "policy.yaml"
        text = (REPO_ROOT / "policies" / "hr_minimisation.yaml").read_text(encoding="utf-8")
        bad_policy.write_text(
            text.replace("personal: EMAIL_ADDRESS, ", ""), encoding="utf-8"
        )  # work_email no longer declared personal: the schema says it is
        base = {"connector.class": "hris-export", "name": "contract-hr-files-failing"}
        return [
            ContractFailure(
                "drop directory removed",
                {**base, "drop.dir": str(gone)},
                ConfigError,
                arrange=lambda: shutil.rmtree(gone),
            ),
            ContractFailure(
                "policy disagrees with the schema",
                {**base, "drop.dir": str(tmp_path), "policy": str(bad_policy)},
                ConfigError,
            ),
        ]
