"""A singer connector registered through the Kafka Connect REST API and run by the connect
worker: its events reach the stream topics, its offset is the tap's STATE, and a tap that
starts printing garbage puts the connector in FAILED with a trace a user can act on —
never a silent stop, never the garbage itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.connect_api import create_connect_app
from hub.connect_worker import ConnectWorker
from hub.serving import serve
from hub.settings import load_settings
from tests.integration.conftest import headers_of, open_state, read_topic, wait_for
from tests.taps.hubfixture import USERS, connector_config, user_id, write_source

pytestmark = pytest.mark.integration

GARBAGE = "print-debug: Grace Hopper <grace.debug@example.com>"


@dataclass
class Setup:
    http: httpx.Client
    bootstrap: str
    tmp: Path


@pytest.fixture
def setup(kafka_bootstrap: str, registry_url: str, unique: str, tmp_path: Path) -> Iterator[Setup]:
    topics = {
        "configs_topic": f"_it-sw-configs-{unique}",
        "status_topic": f"_it-sw-status-{unique}",
        "offsets_topic": f"_it-sw-offsets-{unique}",
    }
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, schema_registry_url=registry_url, home=tmp_path
    )
    api_state = open_state(kafka_bootstrap, topics).start()
    worker_state = open_state(kafka_bootstrap, topics).start()
    stop = threading.Event()
    worker = ConnectWorker(settings, worker_state, worker_id="w1", poll_interval=0.2)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with serve(create_connect_app(api_state)) as url, httpx.Client(base_url=url) as http:
            yield Setup(http, kafka_bootstrap, tmp_path)
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
        worker_state.close()
        api_state.close()


def status(s: Setup, name: str) -> dict[str, str]:
    response = s.http.get(f"/connectors/{name}/status")
    return dict(response.json()["connector"]) if response.status_code == 200 else {}


def test_a_tap_runs_as_a_connector_and_garbage_fails_it_with_a_clear_status(
    setup: Setup, unique: str
) -> None:
    s = setup
    name = f"tap-{unique}"
    data = write_source(s.tmp / "source.json")
    config = connector_config(
        name,
        data,
        s.tmp / "logs",
        extra={"topic.template": f"it.singer-worker.{unique}.{{stream}}"},
    )
    answer = s.http.put("/connector-plugins/singer/config/validate", json=config)
    assert answer.json()["error_count"] == 0, answer.json()
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201

    users_topic = f"it.singer-worker.{unique}.users"

    def topics() -> list[str]:
        return list(s.http.get(f"/connectors/{name}/topics").json()[name]["topics"])

    wait_for(lambda: status(s, name).get("state") == "RUNNING", 30)
    wait_for(lambda: users_topic in topics(), 30)  # created by the worker, from discovery
    users = read_topic(s.bootstrap, users_topic, expect=len(USERS))
    assert {headers_of(m)["hub_source_record_id"] for m in users} == {user_id(u) for u in USERS}

    def offset_state() -> object:
        offsets = s.http.get(f"/connectors/{name}/offsets").json()["offsets"]
        return offsets[0]["offset"].get("state") if offsets else None

    def users_bookmark() -> object:
        state = offset_state()
        bookmarks = state.get("bookmarks", {}) if isinstance(state, dict) else {}
        return bookmarks.get("users", {}).get("replication_key_value")

    # The offset is committed after the records it covers are acknowledged, so a STATE
    # from before the last users record (another stream's bookmark) may be read first.
    wait_for(lambda: users_bookmark() == USERS[-1]["updated_at"], 20)
    [entry] = s.http.get(f"/connectors/{name}/offsets").json()["offsets"]
    assert entry["partition"] == {"tap": name}
    assert set(topics()) == {users_topic, f"it.singer-worker.{unique}.orgs"}

    # The tap starts printing a debug line on stdout mid-stream.
    write_source(data, knobs={"garbage_after_records": 2, "garbage_line": GARBAGE})
    wait_for(lambda: status(s, name).get("state") == "FAILED", 60)
    trace = status(s, name)["trace"]
    assert trace.startswith("FatalError: ")
    assert "line 5 of the tap's stdout is not a Singer message (not JSON)" in trace
    assert str(s.tmp / "logs" / name) in trace  # where to look
    assert "Grace" not in trace
    assert "grace.debug@example.com" not in trace
    assert json.dumps(trace)  # a plain string a client can show


def test_pausing_a_connector_whose_tap_hangs_stops_the_tap_at_once(
    setup: Setup, unique: str
) -> None:
    """A tap between two STATEs gives the runner no chance to see the stop: the worker
    interrupts it, so pause takes effect now, not after the idle timeout."""
    s = setup
    name = f"tap-hang-{unique}"
    child_pid = s.tmp / "child.pid"
    data = write_source(
        s.tmp / "source.json",
        knobs={"hang_after_records": 4, "hang_child_pid_file": str(child_pid)},
    )
    config = connector_config(
        name,
        data,
        s.tmp / "logs",
        extra={
            "topic.template": f"it.singer-hang.{unique}.{{stream}}",
            "idle.timeout.seconds": "600",
        },
    )
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
    wait_for(child_pid.exists, 60)  # the tap is hanging now
    wait_for(lambda: status(s, name).get("state") == "RUNNING", 10)
    paused_at = time.monotonic()
    assert s.http.put(f"/connectors/{name}/pause").status_code == 202
    wait_for(lambda: status(s, name).get("state") == "PAUSED", 30)
    assert time.monotonic() - paused_at < 15  # not the 600 s idle timeout
    pid = int(child_pid.read_text(encoding="utf-8"))
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)  # its whole group is gone
