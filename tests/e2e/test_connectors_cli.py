"""`crmhub connectors` as a user runs it against `crmhub up`: apply a directory of YAML
definitions twice (the second run changes nothing), then watch a connector's status."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from hub.broker import free_port
from hub.settings import REPO_ROOT
from tests.e2e.test_cli import CRMHUB, crmhub, user_env

pytestmark = pytest.mark.e2e

MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"


@dataclass(frozen=True)
class Stack:
    cwd: Path
    home: Path
    api_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cwd = tmp_path_factory.mktemp("connectors-cli")
    home = cwd / "hub-home"
    port = free_port()
    log = (cwd / "up.log").open("wb")
    proc = subprocess.Popen(
        [*CRMHUB, "up"],
        cwd=cwd,
        env=user_env(HUB_HOME=str(home), HUB_API_PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    api_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (cwd / "up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "crmhub up: no sales-leads connector in 60 s"
            try:
                names = httpx.get(f"{api_url}/connectors", timeout=2).json()
                if "sales-leads" in names:  # the connect worker registered it
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        yield Stack(cwd, home, api_url)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        log.close()
    assert code == 0, (cwd / "up.log").read_text()[-3000:]


def test_apply_is_idempotent_and_status_shows_running(stack: Stack) -> None:
    defs = stack.cwd / "connectors"
    defs.mkdir()
    drop = stack.home / "drop"
    (defs / "sales-leads.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "sales-leads",
                "config": {
                    "connector.class": "spreadsheet",
                    "drop.dir": str(drop),
                    "mapping": str(MAPPING),
                    "settle.seconds": 0.5,  # a number in YAML: kept as Connect's string
                },
            }
        )
    )
    (defs / "partner-leads.yml").write_text(
        yaml.safe_dump(
            {
                "name": "partner-leads",
                "config": {
                    "connector.class": "connectors.spreadsheet.connector.SpreadsheetConnector",
                    "drop.dir": str(stack.cwd / "partner-drop"),
                    "mapping": str(MAPPING),
                    "department": "partners",
                },
            }
        )
    )
    (defs / "README.txt").write_text("not a definition")
    # The CLI finds the API through $HUB_HOME/runtime.json, as a user's shell would.

    first = crmhub("connectors", "apply", str(defs), cwd=stack.cwd, HUB_HOME=str(stack.home))
    assert first.returncode == 0, first.stderr
    assert "partner-leads: created" in first.stdout
    assert "sales-leads: updated" in first.stdout

    second = crmhub("connectors", "apply", str(defs), cwd=stack.cwd, HUB_HOME=str(stack.home))
    assert second.returncode == 0, second.stderr
    assert "partner-leads: unchanged" in second.stdout
    assert "sales-leads: unchanged" in second.stdout
    config = httpx.get(f"{stack.api_url}/connectors/sales-leads/config").json()
    assert config["settle.seconds"] == "0.5"

    deadline = time.monotonic() + 30
    while True:
        status = crmhub(
            "connectors", "status", "sales-leads", cwd=stack.cwd, HUB_HOME=str(stack.home)
        )
        assert status.returncode == 0, status.stderr
        if "RUNNING" in status.stdout and "task 0: RUNNING" in status.stdout:
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.5)

    listing = crmhub("connectors", "list", "--url", stack.api_url, cwd=stack.cwd, COLUMNS="200")
    assert listing.returncode == 0, listing.stderr
    assert "partner-leads" in listing.stdout
    assert "sales-leads" in listing.stdout

    missing = crmhub("connectors", "status", "nope", cwd=stack.cwd, HUB_HOME=str(stack.home))
    assert missing.returncode == 1
    assert "404: Connector nope not found" in missing.stderr

    runtime = json.loads((stack.home / "runtime.json").read_text())
    assert runtime["api_url"] == stack.api_url


def test_a_steward_lists_shows_and_redrives_quarantined_records(stack: Stack) -> None:
    """The data steward's loop on a running hub: a row the validation stage stops is listed
    by rule and shown with its reason (never its value); re-driven, the original event goes
    through the processor again under today's policy. Still invalid, it is stopped again as
    a NEW quarantine record naming the re-driven event, while the first shows `redriven`;
    the re-drive itself is in the audit trail, which still verifies."""
    home = str(stack.home)
    drop = stack.home / "drop"
    drop.mkdir(exist_ok=True)
    (drop / "steward.csv").write_text(
        "Lead ID,First Name,Last Name,Email,Phone,Company,Country\n"
        "S-1,Ada,Lovelace,ada@example.com,(415) 555-0100,Analytical Engines,US\n"
        "S-2,Bad,Address,bad.address-at-example.com,(415) 555-0101,Acme,US\n",
        encoding="utf-8",
    )

    def listed(*args: str) -> list[list[str]]:
        out = crmhub(
            "quarantine", "list", "--rule", "sales.email.format", *args,
            cwd=stack.cwd, HUB_HOME=home, COLUMNS="250",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return [
            [cell.strip() for cell in line.split("│")[1:-1]]
            for line in out.stdout.splitlines()
            if line.startswith("│") and "steward" not in line
        ]

    deadline = time.monotonic() + 60
    while not (rows := listed()):
        assert time.monotonic() < deadline, "the invalid row never reached the quarantine"
        time.sleep(0.5)
    [[short_id, stage, connector, _entity, rules, source, status, redrives]] = rows
    assert (stage, connector, rules, status, redrives) == (
        "validation",
        "sales-leads",
        "sales.email.format",
        "open",
        "0",
    )
    assert source.startswith("crm.raw.sales.leads.v1:")

    shown = crmhub("quarantine", "show", short_id, cwd=stack.cwd, HUB_HOME=home)
    assert shown.returncode == 0, shown.stderr
    assert "sales.email.format [email]" in shown.stdout
    assert "bad.address" not in shown.stdout + shown.stderr  # the reason, never the value

    redriven = crmhub(
        "quarantine", "redrive", "--rule", "sales.email.format", cwd=stack.cwd, HUB_HOME=home
    )
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert f"{short_id}: republished crm.raw.sales.leads.v1:" in redriven.stdout

    deadline = time.monotonic() + 60
    while len(rows := listed("--status", "all")) < 2:
        assert time.monotonic() < deadline, f"no second quarantine record: {rows}"
        time.sleep(0.5)
    by_id = {row[0]: row for row in rows}
    assert (by_id[short_id][6], by_id[short_id][7]) == ("redriven", "1")
    [again] = [row for row in rows if row[0] != short_id]
    assert (again[6], again[7]) == ("open", "0")
    assert again[5] != source  # the re-driven copy, at its own offset
    assert again[5] in redriven.stdout

    nothing = crmhub(
        "quarantine", "redrive", short_id, cwd=stack.cwd, HUB_HOME=home
    )  # already re-driven: not open any more
    assert nothing.returncode == 0
    assert "nothing to re-drive" in nothing.stdout

    verified = crmhub("audit", "verify", cwd=stack.cwd, HUB_HOME=home, COLUMNS="200")
    assert verified.returncode == 0, verified.stdout + verified.stderr
