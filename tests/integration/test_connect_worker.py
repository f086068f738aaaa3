"""The connect worker runs what the REST API registers: a spreadsheet connector on a drop
directory publishes its rows to the raw topic; pause holds new files back, resume lets
them through; a broken config fails the connector with an actionable trace free of
values; delete stops it. Real broker, real registry, real HTTP."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.broker import ensure_topics
from hub.connect_api import create_connect_app
from hub.connect_state import ConnectState
from hub.connect_worker import ConnectWorker
from hub.serving import serve
from hub.settings import REPO_ROOT, load_settings
from tests.integration.conftest import open_state, read_topic, wait_for

pytestmark = pytest.mark.integration


MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
HEADER = ["Lead ID", "First Name", "Last Name", "Email", "Phone", "Company", "Country"]


@dataclass
class Setup:
    http: httpx.Client
    state: ConnectState
    drop: Path
    raw: str
    bootstrap: str


@pytest.fixture
def setup(kafka_bootstrap: str, registry_url: str, unique: str, tmp_path: Path) -> Iterator[Setup]:
    topics = {
        "configs_topic": f"_it-w-configs-{unique}",
        "status_topic": f"_it-w-status-{unique}",
        "offsets_topic": f"_it-w-offsets-{unique}",
    }
    raw = f"it.worker.raw.{unique}"
    ensure_topics(kafka_bootstrap, {raw: (2, {})})
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, schema_registry_url=registry_url, home=tmp_path
    )
    api_state = open_state(kafka_bootstrap, topics).start()
    worker_state = open_state(kafka_bootstrap, topics).start()
    stop = threading.Event()
    worker = ConnectWorker(settings, worker_state, worker_id="w1", poll_interval=0.2)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    drop = tmp_path / "drop"
    drop.mkdir()
    try:
        with serve(create_connect_app(api_state)) as url, httpx.Client(base_url=url) as http:
            yield Setup(http, api_state, drop, raw, kafka_bootstrap)
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
        worker_state.close()
        api_state.close()


def write_leads(path: Path, first: int, rows: int) -> list[str]:
    """A CSV of valid leads; returns their ids. Written aside, then renamed in."""
    tmp = path.with_suffix(".part")
    ids = [f"L-{i:06d}" for i in range(first, first + rows)]
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i, lead in zip(range(first, first + rows), ids, strict=True):
            writer.writerow(
                [
                    lead,
                    "Grace",
                    f"Hopper{i}",
                    f"grace{i}@example.com",
                    "(415) 555-0199",
                    f"Navy Labs {i}",
                    "US",
                ]
            )
    tmp.replace(path)
    return ids


def keys(s: Setup, expect: int | None = None) -> list[str]:
    return sorted((m.key() or b"").decode() for m in read_topic(s.bootstrap, s.raw, expect=expect))


def state_of(s: Setup, name: str) -> str:
    response = s.http.get(f"/connectors/{name}/status")
    return str(response.json()["connector"]["state"]) if response.status_code == 200 else "404"


def test_worker_runs_pauses_resumes_and_stops_a_connector(setup: Setup, unique: str) -> None:
    s = setup
    name = f"sheet-{unique}"
    first = write_leads(s.drop / "first.csv", 0, 25)
    config = {
        "connector.class": "connectors.spreadsheet.connector.SpreadsheetConnector",
        "drop.dir": str(s.drop),
        "mapping": str(MAPPING),
        "topic": s.raw,
        "settle.seconds": "0",
    }
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
    wait_for(lambda: state_of(s, name) == "RUNNING", 20, 0.1)
    assert keys(s, expect=25) == first
    wait_for(lambda: len(s.http.get(f"/connectors/{name}/offsets").json()["offsets"]) == 1, 10)
    offset = s.http.get(f"/connectors/{name}/offsets").json()["offsets"][0]
    assert offset["partition"] == {"file": "first.csv"}
    assert offset["offset"]["done"] is True
    assert offset["offset"]["published"] == 25

    assert s.http.put(f"/connectors/{name}/pause").status_code == 202
    wait_for(lambda: state_of(s, name) == "PAUSED", 10, 0.1)
    second = write_leads(s.drop / "second.csv", 100, 10)
    time.sleep(2.0)  # ten poll intervals of the paused connector
    assert keys(s, expect=25) == first  # nothing new while paused

    assert s.http.put(f"/connectors/{name}/resume").status_code == 202
    wait_for(lambda: state_of(s, name) == "RUNNING", 10, 0.1)
    assert keys(s, expect=35) == sorted(first + second)

    assert s.http.delete(f"/connectors/{name}").status_code == 204
    wait_for(lambda: state_of(s, name) == "404", 10, 0.1)
    write_leads(s.drop / "third.csv", 200, 5)
    time.sleep(2.0)
    assert keys(s, expect=35) == sorted(first + second)  # deleted: nothing read any more
    assert s.state.connector_status(name) is None  # the worker did not write it back


def test_a_broken_config_fails_with_an_actionable_trace(setup: Setup, unique: str) -> None:
    s = setup
    name = f"broken-{unique}"
    write_leads(s.drop / "leads.csv", 0, 3)  # personal data the trace must not carry
    missing = s.drop.parent / "no-such-mapping.yaml"
    config = {
        "connector.class": "spreadsheet",
        "drop.dir": str(s.drop),
        "mapping": str(missing),
        "topic": s.raw,
        "settle.seconds": "0",
    }
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
    wait_for(lambda: state_of(s, name) == "FAILED", 20, 0.1)
    status = s.http.get(f"/connectors/{name}/status").json()
    trace = status["connector"]["trace"]
    assert "ConfigError" in trace
    assert "lead mapping" in trace
    assert "no-such-mapping.yaml" in trace
    assert "cannot read" in trace
    for value in ("Grace", "Hopper", "example.com", "555-0199"):
        assert value not in trace
    assert status["tasks"][0]["state"] == "FAILED"

    # fixing the config (a PUT) restarts it, and it runs
    fixed = s.http.put(f"/connectors/{name}/config", json={**config, "mapping": str(MAPPING)})
    assert fixed.status_code == 200
    wait_for(lambda: state_of(s, name) == "RUNNING", 20, 0.1)
    assert len(keys(s, expect=3)) == 3
