"""Re-drive after a fix (hub/redrive.py), through the same path, on the real broker, a
real connect worker and the real REST API:

- a sheet the connector refused (a required column it could not map) is read again once
  the mapping is fixed: the connector is rewound through the Connect REST API;
- an event a processor stage stopped is published again to its source topic with a new
  event id derived from the original and the attempt, and the re-drive headers;
- every re-drive is a QuarantineRedriven event; a record with no source position is
  refused with what to do instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from hub import topics
from hub.events import deterministic_id
from hub.redrive import H_REDRIVE_ATTEMPT, H_REDRIVE_OF, QuarantineEntry, Redriver
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT, load_settings
from tests.integration.conftest import headers_of, read_topic, wait_for
from tests.integration.test_connect_worker import (  # the worker + API fixture
    MAPPING,
    Setup,
    keys,
    setup,
    state_of,
    write_leads,
)

pytestmark = pytest.mark.integration
_ = setup  # a fixture, used by name

SCHEMAS = REPO_ROOT / "schemas"


def codec(registry: SchemaRegistryClient, topic: str, name: str) -> AvroCodec:
    return AvroCodec(registry, topic, load_schema_text(schema_path(SCHEMAS, name)))


def quarantined(s: Setup, registry: SchemaRegistryClient, connector: str) -> list[dict[str, Any]]:
    q = codec(registry, topics.QUARANTINE, "common/QuarantineRecord")
    out = []
    for msg in read_topic(s.bootstrap, topics.QUARANTINE, idle=0.5):
        record = q.decode(msg.value())
        if record["connector"] == connector:
            out.append(record)
    return out


def redrives(s: Setup, registry: SchemaRegistryClient, quarantine_id: str) -> list[dict[str, Any]]:
    r = codec(registry, topics.QUARANTINE_REDRIVES, "common/QuarantineRedriven")
    return [
        value
        for value in (
            r.decode(m.value())
            for m in read_topic(s.bootstrap, topics.QUARANTINE_REDRIVES, idle=0.5)
        )
        if value["quarantine_id"] == quarantine_id
    ]


def test_a_refused_sheet_is_read_again_after_its_mapping_is_fixed(
    setup: Setup, registry: SchemaRegistryClient, registry_url: str, unique: str, tmp_path: Path
) -> None:
    s = setup
    name = f"redrive-{unique}"
    sheet = s.drop / "es.csv"
    sheet.write_text(
        "Lead ID,First Name,Apellido,Email\n"
        "E-1,Ana,García,ana@example.es\nE-2,Luis,Pérez,luis@example.es\n",
        encoding="utf-8",
    )
    config = {
        "connector.class": "spreadsheet",
        "drop.dir": str(s.drop),
        "mapping": str(MAPPING),
        "topic": s.raw,
        "settle.seconds": "0",
    }
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
    wait_for(lambda: len(quarantined(s, registry, name)) == 1, 30)
    [refused] = quarantined(s, registry, name)
    assert refused["stage"] == "connector"
    assert refused["source_file"] == "es.csv"
    assert [r["rule_id"] for r in refused["reasons"]] == ["file.unreadable"]
    assert keys(s) == []

    # The fix: a mapping that knows the Spanish header. The connector restarts with it, but
    # its cursor says the file was read: nothing happens until the record is re-driven.
    fixed = tmp_path / "mapping.yaml"
    shutil.copy(MAPPING, fixed)
    text = fixed.read_text(encoding="utf-8")
    fixed.write_text(text.replace("last_name: [Last Name,", "last_name: [Apellido, Last Name,"))
    assert (
        s.http.put(f"/connectors/{name}/config", json={**config, "mapping": str(fixed)}).status_code
        == 200
    )
    wait_for(lambda: state_of(s, name) == "RUNNING", 20)
    assert keys(s) == []

    entry = QuarantineEntry(
        event_id="quarantine-event",
        quarantine_id=str(refused["quarantine_id"]),
        stage="connector",
        connector=name,
        source_file="es.csv",
        source_row=int(refused["source_row"]),
        source_topic=None,
        source_partition=None,
        source_offset=None,
        attempts=0,
    )
    settings = load_settings(
        kafka_bootstrap=s.bootstrap, schema_registry_url=registry_url, home=tmp_path
    )
    with Redriver(settings, api_url=str(s.http.base_url), rule="file.unreadable") as redriver:
        [result] = redriver.run([entry])
    assert (result.action, result.target) == ("reread", f"{name}/es.csv@1")
    assert keys(s, expect=2) == ["E-1", "E-2"]
    wait_for(lambda: state_of(s, name) == "RUNNING", 20)
    [recorded] = redrives(s, registry, entry.quarantine_id)
    assert recorded["action"] == "reread"
    assert recorded["attempt"] == 1
    assert recorded["rule_id"] == "file.unreadable"


def test_an_event_a_stage_stopped_is_published_again_with_a_new_id(
    setup: Setup, registry: SchemaRegistryClient, registry_url: str, unique: str, tmp_path: Path
) -> None:
    s = setup
    name = f"republish-{unique}"
    write_leads(s.drop / "ok.csv", 0, 3)
    config = {
        "connector.class": "spreadsheet",
        "drop.dir": str(s.drop),
        "mapping": str(MAPPING),
        "topic": s.raw,
        "settle.seconds": "0",
    }
    assert s.http.post("/connectors", json={"name": name, "config": config}).status_code == 201
    original = read_topic(s.bootstrap, s.raw, expect=3)[0]
    original_id = headers_of(original)["ce_id"]
    settings = load_settings(
        kafka_bootstrap=s.bootstrap, schema_registry_url=registry_url, home=tmp_path
    )
    entry = QuarantineEntry(
        event_id="q-event",
        quarantine_id=f"q-{unique}",
        stage="validation",
        connector=name,
        source_file=None,
        source_row=None,
        source_topic=s.raw,
        source_partition=original.partition(),
        source_offset=original.offset(),
        attempts=0,
    )
    for attempt in (1, 2):
        with Redriver(settings, api_url=None, rule=None) as redriver:
            [result] = redriver.run(
                [QuarantineEntry(**{**entry.__dict__, "attempts": attempt - 1})]
            )
        assert result.action == "republished"
        topic, partition, offset = result.target.rsplit(":", 2)
        assert topic == s.raw
        copy = next(
            m
            for m in read_topic(s.bootstrap, s.raw, expect=3 + attempt)
            if (m.partition(), m.offset()) == (int(partition), int(offset))
        )
        h = headers_of(copy)
        assert (copy.key(), copy.value()) == (original.key(), original.value())
        assert h["ce_id"] == deterministic_id(original_id, "redrive", str(attempt))
        assert h[H_REDRIVE_OF] == entry.quarantine_id
        assert h[H_REDRIVE_ATTEMPT] == str(attempt)
        assert h["hub_trace_id"] == headers_of(original)["hub_trace_id"]
    assert [r["attempt"] for r in redrives(s, registry, entry.quarantine_id)] == [1, 2]

    gone = QuarantineEntry(**{**entry.__dict__, "source_topic": None, "source_offset": None})
    with Redriver(settings, api_url=None, rule=None) as redriver:
        [refused] = redriver.run([gone])
    assert refused.action == "refused"
    assert "ask the sender to deliver it again" in refused.target
