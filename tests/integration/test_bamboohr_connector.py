"""The bamboohr connector against the BambooHR simulator (a real uvicorn server on 127.0.0.1):
cursors that resume exactly (also in the middle of a second shared by a bulk import),
incremental reads, rate limits (429 and the older 503) honoured, 5xx bursts, malformed JSON
and slow answers recovered or given up clearly, data minimisation, quarantine, and runs
through the real ConnectorRunner on the session broker (a kill in the middle of a read
resumes with nothing skipped and nothing repeated)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import REGISTRY

from connectors.bamboohr.client import parse_timestamp
from connectors.bamboohr.connector import BambooHRConfig, BambooHRConnector
from connectors.bamboohr.export import HrisExportConfig, HrisExportConnector
from connectors.bamboohr.policy import load_minimisation_policy
from connectors.bamboohr.simdata import SENSITIVE_FIELDS, Company, generate_company
from connectors.bamboohr.simulator import Faults, Simulator, SimulatorServer
from hub.broker import ensure_topics
from hub.connect import ConnectorRunner, stream_codecs
from hub.connect_offsets import OffsetStore
from hub.errors import RetriableError
from hub.sdk.standalone import StateOffsets
from hub.sdk.streams import COUNTER_KEYS
from hub.sdk.testing import ReadResult, read_all
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, read_topic
from tests.integration.test_bamboohr_contract import EXPORT_CSV

pytestmark = pytest.mark.integration

KEY = "it-key"
SCHEMAS = REPO_ROOT / "schemas"
ALLOWED_API_FIELDS = set(load_minimisation_policy().stream("employees").from_bamboohr)


@pytest.fixture
def company() -> Company:
    return generate_company(seed=5, count=40, bulk=12, bad_share=0.06)


@pytest.fixture
def server(company: Company) -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(company, api_keys={KEY: "ok"})).running() as srv:
        yield srv


def connector(server: SimulatorServer, **overrides: Any) -> BambooHRConnector:
    settings: dict[str, Any] = {
        "company_domain": "acme",
        "api_key": KEY,
        "base_url": server.gateway_url(),
        "attempts": 4,
        "backoff_seconds": 0.01,
        "read_timeout_seconds": 2.0,
        "max_wait_seconds": 5.0,
        **overrides,
    }
    return BambooHRConnector(BambooHRConfig(**settings))


def ids(result: ReadResult) -> list[str]:
    return [r.record_id for r, _, _ in result.records]


def state_after(result: ReadResult, index: int) -> StateOffsets:
    """What a runner stores after record ``index``: per partition, its last cursor."""
    state = StateOffsets()
    for rec, part, cursor in result.records[: index + 1]:
        assert rec.cursor is not None, "every record is a resume point"
        state.put(part, {**(cursor or {}), "done": False, **dict.fromkeys(COUNTER_KEYS, 0)})
    return state


def stamp(company: Company, employee_id: str) -> str:
    return company.changes[employee_id].last_changed.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- cursors ------------------------------------------------------------------------------


def test_a_resume_inside_a_bulk_second_neither_skips_nor_repeats(
    server: SimulatorServer, company: Company
) -> None:
    full = read_all(connector(server))
    by_second: dict[str, list[int]] = {}
    for i, (rec, part, _) in enumerate(full.records):
        if part == {"stream": "employees"}:
            by_second.setdefault(rec.record_id.split(":", 2)[2], []).append(i)
    bulk = max(by_second.values(), key=len)
    assert len(bulk) >= 10, "the seed has a bulk import: many changes in one second"
    for index in (bulk[0], bulk[len(bulk) // 2], bulk[-1]):
        cursor = full.records[index][2]
        assert cursor is not None
        assert len(cursor["seen"]) == bulk.index(index) + 1  # ids handled in that second
        rest = read_all(connector(server), state_after(full, index))
        assert ids(rest) == ids(full)[index + 1 :], f"resume after #{index + 1} differs"


def test_later_changes_are_read_once_even_in_the_cursors_own_second(
    server: SimulatorServer, company: Company
) -> None:
    first = read_all(connector(server))
    state = state_after(first, len(first.records) - 1)
    # Changes after the read: one in the very second the employees cursor stands on (an
    # employee not yet seen at that second), an update, an insert and a deletion.
    emp_cursor = [c for _, p, c in first.records if p["stream"] == "employees"][-1]
    assert emp_cursor is not None
    tie_at = parse_timestamp(emp_cursor["since"])
    assert tie_at is not None
    live = [i for i in company.live_ids() if i not in company.bad]
    tie_id, updated_id, deleted_id = live[0], live[1], live[2]
    company.update(tie_id, {"jobTitle": "Head of Sales"}, at=tie_at)
    company.update(updated_id, {"department": "Sales"})
    new_id = company.insert(dict(company.employees[live[3]]))
    company.delete(deleted_id)

    second = read_all(connector(server), state)
    assert sorted(ids(second)) == sorted(
        [
            f"employees:{tie_id}:{stamp(company, tie_id)}",
            f"employees:{updated_id}:{stamp(company, updated_id)}",
            f"employees:{new_id}:{stamp(company, new_id)}",
            f"employee_erasures:{deleted_id}:{stamp(company, deleted_id)}",
        ]
    )
    by_id = {r.key: r.value or {} for r in second.good}
    assert by_id[tie_id]["job_title"] == "Head of Sales"
    assert by_id[new_id]["change_type"] == "Inserted"
    erased = by_id[deleted_id]
    assert erased == {
        "employee_id": deleted_id,
        "erased_at": stamp(company, deleted_id),
        "source_system": "bamboohr",
        "minimisation_policy": load_minimisation_policy().version,
    }


def test_an_employee_deleted_between_the_list_and_the_fetch_is_skipped_with_a_checkpoint(
    server: SimulatorServer, company: Company
) -> None:
    last_id = max(company.live_ids(), key=lambda i: (company.changes[i].last_changed, int(i)))
    del company.employees[last_id]  # still listed as Updated/Inserted, gone on fetch: 404
    c = connector(server)
    result = read_all(c)
    assert all(not rid.startswith(f"employees:{last_id}:") for rid in ids(result))
    assert c.gone == 1
    employees = [cur for _, p, cur in result.records if p["stream"] == "employees"]
    assert employees[-1] is not None
    assert last_id in employees[-1]["seen"]  # the checkpoint moved the cursor past it


# -- the API's failures ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_are_honoured_with_retry_after(
    server: SimulatorServer, company: Company, status: int
) -> None:
    sim = server.simulator
    sim.faults = Faults(rate_limit=15, rate_window=1.0, rate_status=status)
    c = connector(server, attempts=5)
    started = time.monotonic()
    result = read_all(c)
    elapsed = time.monotonic() - started
    throttled = sim.requests(status=status)
    assert throttled >= 2  # 40 employees: 2 reads of the change list + 38 fetches, 15 a second
    assert elapsed >= 0.9 * throttled  # each Retry-After (1 s) was waited out...
    assert len(result.good) + len(result.bad) == len(company.changes)  # ...and nothing lost
    assert c.client.requests == sim.requests()  # every request the client made, answered


def test_a_5xx_burst_is_retried_and_nothing_is_lost(
    server: SimulatorServer, company: Company
) -> None:
    sim = server.simulator
    sim.faults = Faults(statuses=[500, 502, 503, 504])  # four in a row on one request
    c = connector(server, attempts=5)
    result = read_all(c)
    assert len(result.records) == len(company.changes)
    assert sum(sim.requests(status=s) for s in (500, 502, 503, 504)) == 4
    assert c.client.requests == sim.requests(status=200) + 4


def test_malformed_json_is_retried_then_given_up_without_quoting_the_query(
    server: SimulatorServer, company: Company
) -> None:
    sim = server.simulator
    sim.faults = Faults(malformed=2)
    assert len(read_all(connector(server)).records) == len(company.changes)
    sim.faults = Faults(malformed=1000)
    with pytest.raises(RetriableError) as caught:
        read_all(connector(server, attempts=3))
    assert "not JSON" in caught.value.message
    assert "since" not in caught.value.message


def test_a_slow_answer_times_out_and_is_retried(server: SimulatorServer, company: Company) -> None:
    sim = server.simulator
    sim.faults = Faults(slow=1, delay=1.0)
    assert len(read_all(connector(server, read_timeout_seconds=0.3)).records) == len(
        company.changes
    )
    sim.faults = Faults(slow=1000, delay=1.0)
    with pytest.raises(RetriableError, match="timed out"):
        read_all(connector(server, read_timeout_seconds=0.3, attempts=2))


# -- minimisation and quarantine --------------------------------------------------------


def _dropped(field: str) -> float:
    value = REGISTRY.get_sample_value(
        "hub_hr_fields_dropped_total", {"connector": "hr-bamboohr", "field": field}
    )
    return value or 0.0


def test_only_allowed_fields_are_asked_for_and_anything_else_is_dropped(
    server: SimulatorServer, company: Company, caplog: pytest.LogCaptureFixture
) -> None:
    sim = server.simulator
    sim.faults = Faults(overshare=True)  # answers carry ssn, dateOfBirth, ... unasked
    before = _dropped("ssn")
    with caplog.at_level(logging.INFO):
        result = read_all(connector(server))
    assert set(sim.requested_fields) <= ALLOWED_API_FIELDS
    assert "ssn" not in sim.requested_fields
    fetched = len(company.live_ids())
    assert _dropped("ssn") - before == fetched  # every answer's ssn, dropped and counted
    secrets = {company.employees[i][f] for i in company.live_ids() for f in SENSITIVE_FIELDS}
    published = json.dumps([r.value for r in result.good])
    quarantined = b"".join(r.raw or b"" for r in result.bad).decode()
    logged = caplog.text
    for secret in secrets:
        assert secret not in published
        assert secret not in quarantined
        assert secret not in logged
    assert "ssn x" in logged  # the field's name and count, never a value


def test_bad_records_go_to_quarantine_with_the_allowed_fields_only(
    server: SimulatorServer, company: Company
) -> None:
    server.simulator.faults = Faults(overshare=True)
    result = read_all(connector(server))
    assert {r.key for r in result.bad} == company.bad
    for rec in result.bad:
        assert rec.reasons[0].rule_id == "hr.date"
        assert rec.reasons[0].field in ("hire_date", "termination_date")
        raw = json.loads(rec.raw or b"{}")
        assert set(raw) <= ALLOWED_API_FIELDS
        bad_value = raw["hireDate" if rec.reasons[0].field == "hire_date" else "terminationDate"]
        assert bad_value not in rec.reasons[0].message


def test_an_unknown_change_action_is_quarantined_not_guessed(
    server: SimulatorServer, company: Company
) -> None:
    some = company.live_ids()[0]
    company.changes[some].action = "Merged"
    result = read_all(connector(server))
    (bad,) = [r for r in result.bad if r.key == some]
    assert bad.reasons[0].rule_id == "bamboohr.action"


def test_report_mode_and_concurrent_reads_give_the_same_records(server: SimulatorServer) -> None:
    one = read_all(connector(server))
    for overrides in ({"fetch_mode": "report"}, {"concurrency": 4}):
        other = read_all(connector(server, **overrides))
        assert ids(other) == ids(one), overrides
        assert [r.value for r in other.good] == [r.value for r in one.good], overrides
    assert server.simulator.requests(route="report") == 1


# -- through the real ConnectorRunner ---------------------------------------------------


@dataclass
class Topics:
    bootstrap: str
    registry: SchemaRegistryClient
    prefix: str

    @property
    def employees(self) -> str:
        return f"{self.prefix}.employees"

    @property
    def erasures(self) -> str:
        return f"{self.prefix}.erasures"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}.quarantine"

    @property
    def offsets(self) -> str:
        return f"_{self.prefix}.offsets"

    def runner(self, conn: BambooHRConnector) -> ConnectorRunner:
        offsets = OffsetStore(self.bootstrap, self.offsets)
        offsets.load()
        quarantine = load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord"))
        return ConnectorRunner(
            conn,
            bootstrap=self.bootstrap,
            codec_for=stream_codecs(self.registry, SCHEMAS),
            quarantine_codec=AvroCodec(self.registry, self.quarantine, quarantine),
            offsets=offsets,
            chunk_size=1,
        )

    def decode(self, msg: Message) -> dict[str, Any]:
        value = msg.value()
        assert value is not None
        writer = self.registry.get_schema(int.from_bytes(value[1:5], "big")).schema_str
        assert writer is not None
        return AvroCodec(self.registry, str(msg.topic()), writer).decode(value)


@pytest.fixture
def topics(kafka_bootstrap: str, registry: SchemaRegistryClient, unique: str) -> Topics:
    t = Topics(kafka_bootstrap, registry, f"it.bamboohr.{unique}")
    ensure_topics(
        kafka_bootstrap,
        {
            t.employees: (2, {}),
            t.erasures: (1, {}),
            t.quarantine: (1, {}),
            t.offsets: (1, {"cleanup.policy": "compact"}),
        },
    )
    return t


def record_ids(messages: list[Message]) -> list[str]:
    return [headers_of(m)["hub_source_record_id"] for m in messages]


def test_a_kill_in_the_middle_of_a_read_resumes_through_the_runner_exactly(
    server: SimulatorServer, company: Company, topics: Topics
) -> None:
    def conn() -> BambooHRConnector:
        return connector(server, topic=topics.employees, erasures_topic=topics.erasures, attempts=2)

    sim = server.simulator
    sim.faults = Faults(down_after=15)  # the API goes away after 15 requests
    with pytest.raises(RetriableError):
        topics.runner(conn()).run_once()
    sim.faults = Faults()  # back: a restarted worker resumes from the stored cursor
    topics.runner(conn()).run_once()

    live_good = [i for i in company.live_ids() if i not in company.bad]
    employees = read_topic(topics.bootstrap, topics.employees, expect=len(live_good))
    got = record_ids(employees)
    assert sorted(got) == sorted(f"employees:{i}:{stamp(company, i)}" for i in live_good)
    assert len(got) == len(set(got)), "a record was published twice"
    erasures = read_topic(topics.bootstrap, topics.erasures, expect=len(company.deleted_ids()))
    assert sorted(m.key() or b"" for m in erasures) == sorted(
        i.encode() for i in company.deleted_ids()
    )
    erased = topics.decode(erasures[0])
    assert set(erased) == {"employee_id", "erased_at", "source_system", "minimisation_policy"}
    assert headers_of(erasures[0])["ce_type"] == "crm.hr.employee.erased.v1"
    quarantined = read_topic(topics.bootstrap, topics.quarantine, expect=len(company.bad))
    assert len(quarantined) == len(company.bad)

    ada = next(m for m in employees if (m.key() or b"").decode() == live_good[0])
    headers = headers_of(ada)
    assert headers["ce_type"] == "crm.hr.employee.changed.v1"
    assert headers["hub_department"] == "hr"
    value = topics.decode(ada)
    assert value["employee_id"] == live_good[0]
    assert value["work_email"] == company.employees[live_good[0]]["workEmail"]


# -- the HRIS export drop, through the same policy ------------------------------------


def test_an_export_file_is_minimised_by_the_same_policy(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(EXPORT_CSV, encoding="utf-8")
    os.utime(tmp_path / "people.csv", (1_600_000_000, 1_600_000_000))
    conn = HrisExportConnector(HrisExportConfig(name="hr-files-it", drop_dir=tmp_path))
    result = read_all(conn)
    assert conn.minimiser.dropped == {"SSN": 5, "Date of Birth": 5, "Salary": 5}
    ada = next(r.value for r in result.good if r.key == "101")
    assert ada is not None
    assert ada["hire_date"] == "2019-03-01"  # a US date in the export, ISO out
    assert ada["change_type"] == "Exported"
    assert ada["source_file"] == "people.csv"
    text = json.dumps([r.value for r in result.good]) + "".join(
        (r.raw or b"").decode() for r in result.bad
    )
    for secret in ("123-45-6789", "1815-12-10", "120000", "345-67-8901"):
        assert secret not in text
