"""The singer connector run by the hub's ConnectorRunner on the session broker and the
hub's real schema registry, with a real singer-sdk tap (``tests/taps/tap_hubfixture``) as
its subprocess: events on the stream topics (Avro + CloudEvents headers), the tap's STATE
as the connector's offset (committed only once the records before it are acknowledged,
handed back with ``--state``), schema evolution through the registry, and a tap that dies,
hangs or prints garbage failing the connector clearly, with no process left behind."""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.singer.connector import SingerConnector
from hub.broker import ensure_topics, free_port
from hub.connect import ConnectorRunner, stream_codecs
from hub.connect_offsets import OffsetStore
from hub.connect_plugins import build_config, find_plugin
from hub.errors import FatalError, RetriableError, SchemaError
from hub.events import deterministic_id
from hub.sdk.standalone import StateOffsets
from hub.sdk.streams import SourceRecord
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT
from tests.integration.conftest import headers_of, read_topic, wait_for
from tests.taps.hubfixture import (
    ORGS,
    TAPS_DIR,
    USERS,
    connector_config,
    org_id,
    user_id,
    write_source,
)

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"
NAME = "singer-it"
# what the garbage knob prints: personal data, never to be repeated by the hub
GARBAGE_LINE = "DEBUG user Ada Lovelace <ada.garbage@example.com> loaded"


@dataclass
class Setup:
    """One test's topics, source file and connector config (unique names)."""

    bootstrap: str
    registry: SchemaRegistryClient
    prefix: str
    data: Path
    logs: Path

    @property
    def users(self) -> str:
        return f"{self.prefix}.users"

    @property
    def orgs(self) -> str:
        return f"{self.prefix}.orgs"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}.quarantine"

    @property
    def offsets(self) -> str:
        return f"_{self.prefix}.offsets"

    def connector(self, **extra: str) -> SingerConnector:
        extra = {"topic.template": f"{self.prefix}.{{stream}}", **extra}
        config = connector_config(NAME, self.data, self.logs, extra=extra)
        plugin = find_plugin("singer")
        built = plugin.build(build_config(plugin, NAME, config))
        assert isinstance(built, SingerConnector)
        return built

    def runner(
        self, connector: SingerConnector, producer_config: dict[str, Any] | None = None
    ) -> ConnectorRunner:
        """The runner as the connect worker builds it (a fresh offsets replay: a restart)."""
        offsets = OffsetStore(self.bootstrap, self.offsets)
        offsets.load()
        quarantine = load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord"))
        return ConnectorRunner(
            connector,
            bootstrap=self.bootstrap,
            codec_for=stream_codecs(self.registry, SCHEMAS),
            quarantine_codec=AvroCodec(self.registry, self.quarantine, quarantine),
            offsets=offsets,
            chunk_size=1,
            producer_config=producer_config,
        )

    def stored_state(self) -> Any:
        store = OffsetStore(self.bootstrap, self.offsets)
        store.load()
        offset = store.get(NAME, {"tap": NAME})
        return None if offset is None else offset.get("state", "no state")

    def decode(self, msg: Message) -> dict[str, Any]:
        """A value decoded with the schema it was written with."""
        value = msg.value()
        assert value is not None
        writer = self.registry.get_schema(int.from_bytes(value[1:5], "big")).schema_str
        assert writer is not None
        return AvroCodec(self.registry, str(msg.topic()), writer).decode(value)

    def versions(self, topic: str) -> list[int]:
        return list(self.registry.get_versions(f"{topic}-value"))


@pytest.fixture
def setup(
    kafka_bootstrap: str, registry: SchemaRegistryClient, unique: str, tmp_path: Path
) -> Setup:
    s = Setup(
        kafka_bootstrap,
        registry,
        f"it.singer.{unique}",
        write_source(tmp_path / "source.json"),
        tmp_path / "logs",
    )
    ensure_topics(
        kafka_bootstrap,
        {
            s.users: (2, {}),
            s.orgs: (1, {}),
            s.quarantine: (1, {}),
            s.offsets: (1, {"cleanup.policy": "compact"}),
        },
    )
    return s


def ids_of(messages: list[Message]) -> list[str]:
    return [headers_of(m)["hub_source_record_id"] for m in messages]


def bookmark(state: Any) -> str:
    return str(state["bookmarks"]["users"]["replication_key_value"])


def test_records_reach_their_topics_as_avro_events_and_the_state_is_the_offset(
    setup: Setup,
) -> None:
    assert setup.runner(setup.connector()).run_once() == len(USERS) + len(ORGS)

    users = read_topic(setup.bootstrap, setup.users, expect=len(USERS))
    orgs = read_topic(setup.bootstrap, setup.orgs, expect=len(ORGS))
    assert sorted(ids_of(users)) == sorted(user_id(u) for u in USERS)
    assert sorted(ids_of(orgs)) == sorted(org_id(o) for o in ORGS)
    by_id = {int(m.key() or b"0"): m for m in users}  # Kafka key = the primary key
    assert set(by_id) == {u["id"] for u in USERS}
    ada = by_id[1]
    headers = headers_of(ada)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == deterministic_id(NAME, user_id(USERS[0]))
    assert headers["ce_type"] == "crm.support.users.changed.v1"
    assert headers["ce_source"] == f"urn:crm-hub:connector:{NAME}"
    assert headers["ce_subject"] == "1"
    assert headers["content-type"] == "application/avro"
    assert headers["hub_department"] == "support"
    value = setup.decode(ada)
    assert value["updated_at"].isoformat() == "2024-01-01T10:00:00+00:00"
    assert value["birth_date"].isoformat() == "1815-12-10"
    assert value["address"] == {"city": "London", "post_code": "W1"}
    assert value["tags"] == ["math", "engines"]
    assert setup.decode(by_id[3])["address"] is None  # not sent by the tap: null
    assert read_topic(setup.bootstrap, setup.quarantine, idle=0.5) == []

    state = setup.stored_state()
    assert bookmark(state) == "2024-01-04T10:00:00Z"  # the tap's last STATE, as it wrote it
    assert setup.versions(setup.users) == [1]


def test_a_restart_hands_the_state_back_and_the_tap_reads_only_newer_records(
    setup: Setup,
) -> None:
    assert setup.runner(setup.connector()).run_once() == len(USERS) + len(ORGS)
    newer = {"id": 5, "name": "Hedy Lamarr", "age": 85, "updated_at": "2024-02-01T00:00:00Z"}
    older = {"id": 6, "name": "Back Dated", "age": 1, "updated_at": "2023-06-01T00:00:00Z"}
    write_source(setup.data, users=[*USERS, newer, older])

    second = setup.runner(setup.connector())  # a new connector: a restarted worker
    second.run_once()

    users = ids_of(read_topic(setup.bootstrap, setup.users, expect=len(USERS) + 2))
    # before the bookmark: not read again (the back-dated one is missed: incremental
    # replication by updated_at, as the tap declares it); the boundary record again
    # (inclusive bookmark, same record id -> same event id); then the newer one.
    assert users.count(user_id(USERS[0])) == 1
    assert user_id(older) not in users
    assert users.count(user_id(USERS[-1])) == 2
    assert users.count(user_id(newer)) == 1
    assert len(users) == len(USERS) + 2
    assert bookmark(setup.stored_state()) == "2024-02-01T00:00:00Z"


def test_no_state_is_stored_when_the_records_before_it_are_not_acknowledged(
    setup: Setup,
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # the producer's broker is away: nothing is acked
    runner = setup.runner(
        setup.connector(), {"bootstrap.servers": dead, "message.timeout.ms": 1500}
    )
    try:
        with pytest.raises(RetriableError, match="not acknowledged"):
            runner.run_once()
    finally:
        runner.producer.flush(0)
    assert setup.stored_state() in (None, "no state")  # no STATE of the tap was stored


def test_the_state_stored_is_the_last_one_whose_records_were_acknowledged(
    setup: Setup,
) -> None:
    # The tap dies after 5 records (3 orgs, 2 users, a STATE after each user): the STATE
    # after the 2nd user is stored, with every record before it on the topics.
    write_source(setup.data, knobs={"fail_after_records": 5})
    with pytest.raises(FatalError, match="exited with code 1 after 5 records"):
        setup.runner(setup.connector()).run_once()
    assert bookmark(setup.stored_state()) == USERS[1]["updated_at"]
    users = ids_of(read_topic(setup.bootstrap, setup.users, expect=2))
    assert sorted(users) == sorted(user_id(u) for u in USERS[:2])
    assert len(read_topic(setup.bootstrap, setup.orgs, expect=len(ORGS))) == len(ORGS)

    write_source(setup.data)  # the source is back: the restart resumes from that STATE
    setup.runner(setup.connector()).run_once()
    users = ids_of(read_topic(setup.bootstrap, setup.users, expect=len(USERS) + 1))
    assert users.count(user_id(USERS[0])) == 1  # not read again
    assert users.count(user_id(USERS[1])) == 2  # the boundary record, again (same event id)
    assert sorted(set(users)) == sorted(user_id(u) for u in USERS)
    assert bookmark(setup.stored_state()) == USERS[-1]["updated_at"]


def test_a_compatible_schema_change_evolves_the_subject(setup: Setup) -> None:
    connector = setup.connector()
    runner = setup.runner(connector)
    runner.run_once()
    assert setup.versions(setup.users) == [1]

    # The source gains a property between two runs of the same connector.
    nick = {"id": 7, "name": "Radia Perlman", "nickname": "Mother of the Internet"}
    nick["updated_at"] = "2024-03-01T00:00:00Z"
    write_source(setup.data, users=[*USERS, nick], knobs={"add_nickname": True})
    runner.run_once()

    assert setup.versions(setup.users) == [1, 2]
    latest_text = setup.registry.get_latest_version(f"{setup.users}-value").schema.schema_str
    assert latest_text is not None
    latest = json.loads(latest_text)
    assert "nickname" in [f["name"] for f in latest["fields"]]
    users = read_topic(setup.bootstrap, setup.users, expect=len(USERS) + 2)
    values = {headers_of(m)["hub_source_record_id"]: setup.decode(m) for m in users}
    assert values[user_id(nick)]["nickname"] == "Mother of the Internet"
    assert bookmark(setup.stored_state()) == "2024-03-01T00:00:00Z"


def test_an_incompatible_schema_change_fails_with_the_registrys_reason(setup: Setup) -> None:
    runner = setup.runner(setup.connector())
    runner.run_once()
    state = setup.stored_state()

    write_source(setup.data, knobs={"age_as_string": True})  # age: integer -> string
    with pytest.raises(SchemaError) as caught:
        runner.run_once()
    message = caught.value.message
    assert "refused by the registry" in message
    # the registry's reason: where (age is the 4th field) and under which rule
    assert "/fields/3/type" in message
    assert "BACKWARD" in message
    assert setup.versions(setup.users) == [1]
    assert setup.stored_state() == state  # nothing after the refused schema was stored


def _gone(pid: int) -> bool:
    """The process no longer runs (a zombie, waiting for a reaper, counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({"fail_after_records": 4}, "exited with code 1 after 4 records"),
        ({"hang_after_records": 4}, "wrote nothing for 3 s (idle.timeout.seconds)"),
        ({"garbage_after_records": 4}, "line 9 of the tap's stdout is not a Singer message"),
    ],
    ids=["dies", "hangs", "prints-garbage"],
)
def test_a_tap_that_misbehaves_fails_the_connector_clearly_and_leaves_no_process(
    setup: Setup, tmp_path: Path, knobs: dict[str, Any], expected: str
) -> None:
    tap_pid, child_pid = tmp_path / "tap.pid", tmp_path / "child.pid"
    knobs = {**knobs, "pid_file": str(tap_pid), "hang_child_pid_file": str(child_pid)}
    knobs["garbage_line"] = GARBAGE_LINE
    write_source(setup.data, knobs=knobs)
    runner = setup.runner(setup.connector(**{"idle.timeout.seconds": "3"}))

    with pytest.raises(FatalError) as caught:
        runner.run_once()

    message = caught.value.message
    assert expected in message
    log_file = Path(message.split("its log is ")[1].split()[0].rstrip(".;"))
    assert log_file.parent == setup.logs / NAME
    assert log_file.name.endswith("-sync.stderr.log")
    assert log_file.is_file()
    for personal in ("Ada", "ada@example.com", GARBAGE_LINE, "ada.garbage@example.com"):
        assert personal not in message
    pids = [int(p.read_text()) for p in (tap_pid, child_pid) if p.exists()]
    assert pids, "the tap wrote no pid"
    assert all(_gone(pid) for pid in pids), "a tap process was left behind"
    # What was read before the failure (3 orgs, 1 user) is kept, with its STATE.
    assert bookmark(setup.stored_state()) == USERS[0]["updated_at"]


def test_closing_the_read_early_stops_and_reaps_the_tap(setup: Setup, tmp_path: Path) -> None:
    tap_pid, child_pid = tmp_path / "tap.pid", tmp_path / "child.pid"
    knobs = {"hang_after_records": 3, "pid_file": str(tap_pid)}
    write_source(setup.data, knobs={**knobs, "hang_child_pid_file": str(child_pid)})
    connector = setup.connector()
    [part] = connector.partitions(StateOffsets())
    records = cast(Generator[SourceRecord, None, None], connector.fetch(part))
    got = [next(records).record_id for _ in range(3)]  # the tap is alive, mid-stream
    assert got == [org_id(o) for o in ORGS]
    wait_for(child_pid.exists, timeout=20)  # it hangs, with a child of its own
    pids = [int(tap_pid.read_text()), int(child_pid.read_text())]
    assert not any(_gone(pid) for pid in pids)
    records.close()  # what the runner does on stop
    assert all(_gone(pid) for pid in pids), "a tap process was left behind"


def test_the_tap_inherits_no_secret_of_the_worker(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DLP_MASTER_KEY", "worker-secret")
    monkeypatch.setenv("CRM_DB_PASSWORD", "worker-secret")  # another connector's ${env:...}
    env_file = tmp_path / "env.json"
    write_source(setup.data, knobs={"env_file": str(env_file)})
    connector = setup.connector(
        **{"tap.env": json.dumps({"PYTHONPATH": str(TAPS_DIR), "TAP_REGION": "eu"})}
    )
    connector.check()  # --discover

    names = set(json.loads(env_file.read_text()))
    assert {"PYTHONPATH", "TAP_REGION", "PATH"} <= names
    assert not names & {"HUB_DLP_MASTER_KEY", "CRM_DB_PASSWORD"}
    assert not [n for n in names if n.startswith("HUB_")]
