"""`crmhub connectors check|read singer` as a user runs them: a real singer-sdk tap as a
subprocess of the CLI, its records printed back as Singer messages, no Kafka."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_cli import crmhub
from tests.taps.hubfixture import ORGS, USERS, connector_config, write_source

pytestmark = pytest.mark.e2e

TOKEN = "tok-e2e-1b2c3d"  # the source's credential, given to the tap as ${env:FIXTURE_TOKEN}


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def records(out: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == stream]


def test_read_prints_the_taps_records_as_singer_messages_and_resumes_from_state(
    tmp_path: Path,
) -> None:
    data = write_source(tmp_path / "source.json", token=TOKEN)
    config = connector_config(
        "hubfixture", data, tmp_path / "logs", tap={"api_token": "${env:FIXTURE_TOKEN}"}
    )
    definition = tmp_path / "hubfixture.yaml"
    definition.write_text(yaml.safe_dump({"name": "hubfixture", "config": config}))

    def singer(command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """``crmhub connectors COMMAND singer --config …`` with the tap's token set."""
        return crmhub(
            "connectors", command, "singer", "--config", str(definition), *extra,
            cwd=tmp_path, FIXTURE_TOKEN=TOKEN,
        )  # fmt: skip

    check = singer("check")
    assert check.returncode == 0, check.stderr
    assert "source reachable" in check.stdout

    run = singer("read")
    assert run.returncode == 0, run.stderr
    out = messages(run.stdout)
    schemas = {m["stream"]: m for m in out if m["type"] == "SCHEMA"}
    assert set(schemas) == {"users", "orgs"}
    assert schemas["users"]["key_properties"] == ["id"]
    assert schemas["users"]["bookmark_properties"] == ["updated_at"]
    assert [r["id"] for r in records(out, "users")] == [u["id"] for u in USERS]
    assert records(out, "orgs") == ORGS
    ada = records(out, "users")[0]
    assert ada["updated_at"] == "2024-01-01T10:00:00Z"
    assert ada["address"] == {"city": "London", "post_code": "W1"}  # the Avro field name
    state = out[-1]
    assert state["type"] == "STATE"
    [offset] = state["value"]["offsets"]
    assert offset["partition"] == {"tap": "hubfixture"}
    bookmarks = offset["offset"]["state"]["bookmarks"]
    assert bookmarks["users"]["replication_key_value"] == USERS[-1]["updated_at"]
    assert TOKEN not in run.stdout + run.stderr

    # --state: the tap is handed its bookmark and reads only from it (inclusive) on
    state_file = tmp_path / "state.jsonl"
    state_file.write_text(run.stdout)
    again = singer("read", "--state", str(state_file))
    assert again.returncode == 0, again.stderr
    assert [r["id"] for r in records(messages(again.stdout), "users")] == [USERS[-1]["id"]]


def test_a_refused_credential_is_one_clear_line_naming_the_tap_log(tmp_path: Path) -> None:
    data = write_source(tmp_path / "source.json", token=TOKEN)
    config = connector_config(
        "hubfixture", data, tmp_path / "logs", tap={"api_token": "${env:FIXTURE_TOKEN}"}
    )
    definition = tmp_path / "hubfixture.json"
    definition.write_text(json.dumps(config))

    run = crmhub(
        "connectors",
        "read",
        "singer",
        "--config",
        str(definition),
        cwd=tmp_path,
        FIXTURE_TOKEN="not-the-token",
    )
    assert run.returncode != 0
    assert "--discover exited with code 1" in run.stderr
    assert str(tmp_path / "logs" / "hubfixture") in run.stderr
    assert "Traceback" not in run.stderr
    assert "not-the-token" not in run.stdout + run.stderr
