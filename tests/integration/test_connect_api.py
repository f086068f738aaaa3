"""The Kafka Connect compatible REST API over real HTTP, its state in Kafka (the session
broker, topics of its own per test), with a real connect worker acting on it: the whole
life cycle in Connect's shapes and status codes, secrets kept as references, and a new
state store on the same topics seeing what the first one wrote."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.spreadsheet.connector import SpreadsheetConnector
from hub.connect_api import create_connect_app
from hub.connect_state import ConnectState
from hub.connect_worker import ConnectWorker
from hub.serving import serve
from hub.settings import REPO_ROOT, load_settings
from tests.integration.conftest import open_state, wait_for

pytestmark = pytest.mark.integration


MAPPING = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
CLASS = "connectors.spreadsheet.connector.SpreadsheetConnector"


@dataclass
class Hub:
    url: str
    http: httpx.Client
    state: ConnectState
    topics: dict[str, str]
    tmp: Path


@pytest.fixture
def hub(kafka_bootstrap: str, registry_url: str, unique: str, tmp_path: Path) -> Iterator[Hub]:
    """A connect state on fresh topics, the API on it behind uvicorn, a worker on it."""
    names = {
        "configs_topic": f"_it-connect-configs-{unique}",
        "status_topic": f"_it-connect-status-{unique}",
        "offsets_topic": f"_it-connect-offsets-{unique}",
    }
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, schema_registry_url=registry_url, home=tmp_path
    )
    state = open_state(kafka_bootstrap, names).start()
    worker_state = open_state(kafka_bootstrap, names).start()  # as another process
    stop = threading.Event()
    worker = ConnectWorker(settings, worker_state, worker_id="it-worker:1", poll_interval=0.2)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with serve(create_connect_app(state)) as url, httpx.Client(base_url=url) as http:
            yield Hub(url, http, state, names, tmp_path)
    finally:
        stop.set()
        thread.join(30)
        worker_state.close()
        state.close()


def spreadsheet_config(drop: Path, topic: str, **extra: str) -> dict[str, str]:
    drop.mkdir(parents=True, exist_ok=True)
    return {
        "connector.class": "spreadsheet",
        "drop.dir": str(drop),
        "mapping": str(MAPPING),
        "topic": topic,
        "settle.seconds": "0",
        **extra,
    }


def status_of(hub: Hub, name: str) -> dict[str, Any]:
    response = hub.http.get(f"/connectors/{name}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_state(hub: Hub, name: str, state: str, timeout: float = 20) -> dict[str, Any]:
    wait_for(lambda: status_of(hub, name)["connector"]["state"] == state, timeout, 0.1)
    return status_of(hub, name)


def test_server_info_plugins_and_validate(hub: Hub) -> None:
    info = hub.http.get("/").json()
    assert set(info) == {"version", "commit", "kafka_cluster_id"}
    assert info["kafka_cluster_id"]
    plugins = hub.http.get("/connector-plugins").json()
    assert {"class": CLASS, "type": "source", "version": SpreadsheetConnector.version} in plugins

    bad = {"connector.class": "spreadsheet", "name": "v", "settle.seconds": "soon"}
    response = hub.http.put("/connector-plugins/spreadsheet/config/validate", json=bad)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == CLASS
    assert body["groups"][0] == "Common"
    assert body["error_count"] == 3  # drop.dir and mapping missing, settle.seconds not a number
    by_name = {c["value"]["name"]: c for c in body["configs"]}
    assert set(by_name) >= {"connector.class", "name", "tasks.max", "drop.dir", "mapping", "topic"}
    for entry in body["configs"]:
        assert set(entry["definition"]) >= {
            "name",
            "type",
            "required",
            "default_value",
            "importance",
            "documentation",
            "group",
            "order",
        }
        assert set(entry["value"]) == {"name", "value", "recommended_values", "errors", "visible"}
    assert by_name["settle.seconds"]["value"]["value"] == "soon"
    assert by_name["settle.seconds"]["definition"]["type"] == "DOUBLE"
    assert by_name["settle.seconds"]["value"]["errors"]
    assert by_name["drop.dir"]["value"]["errors"] == [
        "drop.dir is required (or path, to read one file)"
    ]
    assert by_name["mapping"]["value"]["errors"]
    assert by_name["topic"]["value"]["errors"] == []
    assert by_name["topic"]["definition"]["default_value"] == "crm.raw.sales.leads.v1"

    good = spreadsheet_config(hub.tmp / "v", "t", name="v")
    assert (
        hub.http.put("/connector-plugins/spreadsheet/config/validate", json=good).json()[
            "error_count"
        ]
        == 0
    )
    unknown = hub.http.put("/connector-plugins/nosuch/config/validate", json=good)
    assert unknown.status_code == 400
    assert unknown.json()["error_code"] == 400
    assert "spreadsheet" in unknown.json()["message"]  # lists the known plugins


def test_connector_life_cycle(hub: Hub, unique: str) -> None:
    http = hub.http
    name = f"leads-{unique}"
    config = spreadsheet_config(hub.tmp / "drop", f"it.connect.raw.{unique}")

    bad = http.post("/connectors", json={"name": name, "config": {**config, "settle.seconds": "x"}})
    assert bad.status_code == 400
    assert bad.json()["error_code"] == 400
    assert "settle.seconds" in bad.json()["message"]
    unknown = http.post(
        "/connectors", json={"name": name, "config": {**config, "connector.class": "x.Y"}}
    )
    assert unknown.status_code == 400
    assert "spreadsheet" in unknown.json()["message"]
    assert http.get(f"/connectors/{name}").status_code == 404  # nothing half-created

    created = http.post("/connectors", json={"name": name, "config": config})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": name,
        "config": {**config, "name": name},
        "tasks": [],
        "type": "source",
    }
    duplicate = http.post("/connectors", json={"name": name, "config": config})
    assert duplicate.status_code == 409
    assert duplicate.json()["error_code"] == 409

    assert name in http.get("/connectors").json()
    assert http.get(f"/connectors/{name}/config").json() == {**config, "name": name}
    running = wait_state(hub, name, "RUNNING")
    assert running == {
        "name": name,
        "connector": {"state": "RUNNING", "worker_id": "it-worker:1"},
        "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "it-worker:1"}],
        "type": "source",
    }
    expanded = http.get("/connectors", params={"expand": "status"}).json()
    assert expanded[name] == {"status": running}
    both = http.get("/connectors?expand=status&expand=info").json()[name]
    assert both["info"] == {
        "name": name,
        "config": {**config, "name": name},
        "tasks": [{"connector": name, "task": 0}],
        "type": "source",
    }
    assert http.get(f"/connectors/{name}/tasks").json()[0]["id"] == {"connector": name, "task": 0}
    wait_for(
        lambda: (
            http.get(f"/connectors/{name}/topics").json() == {name: {"topics": [config["topic"]]}}
        ),
        10,
        0.1,
    )

    # offsets can change only when STOPPED
    offsets = {"offsets": [{"partition": {"file": "a.csv"}, "offset": {"position": 7}}]}
    conflict = http.patch(f"/connectors/{name}/offsets", json=offsets)
    assert conflict.status_code == 409
    assert conflict.json()["error_code"] == 409
    assert http.delete(f"/connectors/{name}/offsets").status_code == 409

    assert http.put(f"/connectors/{name}/pause").status_code == 202
    paused = wait_state(hub, name, "PAUSED")
    assert paused["tasks"][0]["state"] == "PAUSED"
    assert http.patch(f"/connectors/{name}/offsets", json=offsets).status_code == 409

    assert http.put(f"/connectors/{name}/stop").status_code == 202
    assert wait_state(hub, name, "STOPPED")["tasks"] == []
    altered = http.patch(f"/connectors/{name}/offsets", json=offsets)
    assert altered.status_code == 200, altered.text
    assert altered.json() == {
        "message": "The offsets for this connector have been altered successfully"
    }
    assert http.get(f"/connectors/{name}/offsets").json() == offsets
    reset = http.delete(f"/connectors/{name}/offsets")
    assert reset.json() == {
        "message": "The offsets for this connector have been reset successfully"
    }
    assert http.get(f"/connectors/{name}/offsets").json() == {"offsets": []}

    assert http.put(f"/connectors/{name}/resume").status_code == 202
    wait_state(hub, name, "RUNNING")
    assert http.post(f"/connectors/{name}/restart").status_code == 204
    restarted = http.post(f"/connectors/{name}/restart?includeTasks=true&onlyFailed=false")
    assert restarted.status_code == 202
    assert restarted.json()["connector"]["state"] == "RESTARTING"
    assert restarted.json()["tasks"][0]["state"] == "RESTARTING"
    wait_state(hub, name, "RUNNING")

    updated = http.put(f"/connectors/{name}/config", json={**config, "department": "field-sales"})
    assert updated.status_code == 200
    assert updated.json()["config"]["department"] == "field-sales"
    fresh = http.put(f"/connectors/{name}-2/config", json=config)
    assert fresh.status_code == 201

    assert http.delete(f"/connectors/{name}").status_code == 204
    gone = http.get(f"/connectors/{name}")
    assert gone.status_code == 404
    assert gone.json() == {"error_code": 404, "message": f"Connector {name} not found"}
    assert http.get(f"/connectors/{name}/status").status_code == 404
    assert name not in http.get("/connectors").json()


def test_secrets_stay_references(
    hub: Hub, unique: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The "secret" is where the mapping lives: the worker needs it, nobody else sees it.
    secret_path = hub.tmp / f"mapping-{unique}-s3cret.yaml"
    shutil.copy(MAPPING, secret_path)
    monkeypatch.setenv(f"HUB_IT_MAPPING_{unique}", str(secret_path))
    name = f"secret-{unique}"
    config = spreadsheet_config(
        hub.tmp / "drop", f"it.connect.raw.{unique}", mapping=f"${{env:HUB_IT_MAPPING_{unique}}}"
    )
    answers = [hub.http.post("/connectors", json={"name": name, "config": config})]
    assert answers[0].status_code == 201
    wait_state(hub, name, "RUNNING")  # the worker resolved it: the mapping was found
    answers += [
        hub.http.get(f"/connectors/{name}/config"),
        hub.http.get(f"/connectors/{name}"),
        hub.http.get(f"/connectors/{name}/tasks"),
        hub.http.get(f"/connectors/{name}/status"),
        hub.http.get("/connectors?expand=info&expand=status"),
        hub.http.put(
            "/connector-plugins/spreadsheet/config/validate", json={**config, "name": name}
        ),
    ]
    assert answers[1].json()["mapping"] == f"${{env:HUB_IT_MAPPING_{unique}}}"
    for answer in answers:
        assert "s3cret" not in answer.text
    assert (hub.state.config(name) or {})["mapping"].startswith("${env:")  # stored unresolved

    # an unresolvable reference fails the connector with a trace naming it, not a value
    missing = f"missing-{unique}"
    monkeypatch.setenv("HUB_IT_OTHER_SECRET", "s3cret-other")
    bad = {**config, "mapping": "${env:HUB_IT_NOT_SET}", "department": "${env:HUB_IT_OTHER_SECRET}"}
    assert hub.http.post("/connectors", json={"name": missing, "config": bad}).status_code == 201
    failed = wait_state(hub, missing, "FAILED")
    trace = failed["connector"]["trace"]
    assert "${env:HUB_IT_NOT_SET}" in trace
    assert "s3cret" not in trace

    assert "s3cret" not in caplog.text
    for record in caplog.records:
        assert "s3cret" not in record.getMessage()


def test_a_new_state_store_sees_the_same_connectors(
    hub: Hub, unique: str, kafka_bootstrap: str
) -> None:
    config = spreadsheet_config(hub.tmp / "drop", f"it.connect.raw.{unique}")
    for suffix, verb in (("a", None), ("b", "pause"), ("c", "stop")):
        name = f"keep-{suffix}-{unique}"
        assert (
            hub.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
        )
        if verb:
            assert hub.http.put(f"/connectors/{name}/{verb}").status_code == 202
    hub.http.delete(f"/connectors/keep-a-{unique}")

    with open_state(kafka_bootstrap, hub.topics) as replayed:
        assert replayed.connectors() == [f"keep-b-{unique}", f"keep-c-{unique}"]
        assert replayed.target_state(f"keep-b-{unique}") == "PAUSED"
        assert replayed.target_state(f"keep-c-{unique}") == "STOPPED"
        assert replayed.config(f"keep-b-{unique}") == {**config, "name": f"keep-b-{unique}"}
        # and it follows writes made after its replay, by another process
        hub.http.put(f"/connectors/keep-b-{unique}/resume")
        wait_for(lambda: replayed.target_state(f"keep-b-{unique}") == "STARTED", 10, 0.05)
