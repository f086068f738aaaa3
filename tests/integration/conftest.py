"""Fixtures shared by the integration tests: a real schema registry (the hub's own
``SchemaStore`` on the session broker, served by a real uvicorn server) and the real
processor (the Faust app) in a subprocess, plus small helpers to read topics whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient

from hub.connect_state import ConnectState
from hub.events import EventMeta, deterministic_id
from hub.registry.api import create_registry_app
from hub.registry.store import SchemaStore
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.serving import serve
from hub.settings import REPO_ROOT


@contextmanager
def running_registry(bootstrap: str, topic: str) -> Iterator[str]:
    """The hub's registry (state in ``topic`` on ``bootstrap``) behind a real HTTP server."""
    store = SchemaStore(bootstrap, topic)
    store.start()
    try:
        with serve(create_registry_app(store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture(scope="session")
def registry_url(kafka_bootstrap: str) -> Iterator[str]:
    """URL of a real Confluent-compatible registry (the hub's) for this test session."""
    with running_registry(kafka_bootstrap, f"_schemas-it-{uuid.uuid4().hex[:10]}") as url:
        yield url


@pytest.fixture
def registry(registry_url: str) -> Iterator[SchemaRegistryClient]:
    """A fresh Confluent client (empty caches) on the session registry."""
    with SchemaRegistryClient({"url": registry_url}) as client:
        yield client


@pytest.fixture(autouse=True)
def _close_connector_runners(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every connector runner a test built, after the test: the connector tests
    build them in helpers and closures that outlive the test, and their Kafka clients
    then kept reconnecting to the session's broker after it stopped (found at the end of a
    session: 6 runners' producers and consumers still referenced). ``close`` is idempotent,
    so a runner the test or a worker closed already is left as it is."""
    from hub.connect import ConnectorRunner

    built: list[ConnectorRunner] = []
    init = ConnectorRunner.__init__

    def tracked(self: ConnectorRunner, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(ConnectorRunner, "__init__", tracked)
    yield
    for runner in built:
        runner.close()


def hub_env(bootstrap: str, registry_url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a hub process started by a test."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HUB_HOME": str(home),
        "HUB_KAFKA_BOOTSTRAP": bootstrap,
        "HUB_SCHEMA_REGISTRY_URL": registry_url,
        "HUB_CONFIG_FILE": str(home / "absent-crmhub.yaml"),
        **extra,
    }


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass(frozen=True)
class RunningProcessor:
    log: Path
    pid: int

    def dump_stacks(self) -> str:
        """Ask the processor (mode's SIGUSR1: every thread and asyncio task) and its stage
        process (faulthandler) for their stacks; the tail of the log with them."""
        for pid in [self.pid, *child_pids(self.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        return self.log.read_text(errors="replace")[-12000:]


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@contextmanager
def running_processor(bootstrap: str, registry_url: str, home: Path) -> Iterator[RunningProcessor]:
    """The real processor (``python -m hub.cli worker processor``: the Faust app) as a
    subprocess on ``bootstrap`` and ``registry_url``; yields its log file and pid. Stopped
    with SIGTERM on exit, which must end it with code 0. The embedded broker delays its group
    join by half the session timeout (3 s with the 6 s default): allow ~10 s to start."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "processor.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", "processor"],
            cwd=home,
            env=hub_env(bootstrap, registry_url, home),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield RunningProcessor(log_path, proc.pid)
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
    finally:
        code = stop_process(proc)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout:.0f}s")


def read_topic(
    bootstrap: str, topic: str, *, expect: int | None = None, idle: float = 1.0
) -> list[Message]:
    """Every message of ``topic`` (assign from the beginning, no group join). Reads until
    every partition has reported its end once and the topic has then been quiet for
    ``idle`` seconds (tansu's watermarks can lag the log, so they are not used as counts,
    and on a loaded machine the first fetch can take longer than ``idle``: the quiet clock
    starts only at the end of every partition); with ``expect``, until that many arrived
    and then quiet for a short while (anything extra still shows up); fewer than ``expect``
    after 60 s is an AssertionError."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    out: list[Message] = []
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + 60
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.1)
            now = time.monotonic()
            for m in batch:
                err = m.error()
                if err is None:
                    out.append(m)
                    quiet_since = now
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())  # type: ignore[arg-type]
            if len(at_end) < len(parts):
                quiet_since = now
                continue
            enough = expect is None or len(out) >= expect
            if enough and now - quiet_since >= (idle if expect is None else 0.3):
                break
        else:
            if expect is not None and len(out) < expect:
                # Said, not returned short: a test that expects more than can come would
                # otherwise pass after a silent 60 s wait.
                raise AssertionError(f"{topic}: {len(out)} messages after 60 s, expected {expect}")
        return out
    finally:
        consumer.close()


def headers_of(msg: Message) -> dict[str, str]:
    # A consumed message's headers are a list of pairs (the dict form is produce()'s).
    headers = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
    return {k: v.decode() for k, v in headers if v is not None}


def open_state(bootstrap: str, names: dict[str, str]) -> ConnectState:
    """A state store on the test's own topics (not started)."""
    return ConnectState(
        bootstrap,
        configs_topic=names["configs_topic"],
        status_topic=names["status_topic"],
        offsets_topic=names["offsets_topic"],
    )


class RawPublisher:
    """Publishes raw records as a connector does: Avro (Confluent wire format, schemas
    registered per topic) with CloudEvents and lineage headers."""

    def __init__(self, bootstrap: str, registry_url: str) -> None:
        self.registry = SchemaRegistryClient({"url": registry_url})
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        self.codecs: dict[str, AvroCodec] = {}

    def send(self, topic: str, schema: str, key: str, value: dict[str, Any], version: int) -> None:
        """``value`` under ``schema`` (a name under schemas/) on ``topic``, keyed by ``key``;
        the event id is derived from topic, key and ``version``."""
        codec = self.codecs.get(topic)
        if codec is None:
            text = load_schema_text(schema_path(REPO_ROOT / "schemas", schema))
            codec = self.codecs[topic] = AvroCodec(self.registry, topic, text)
        department = topic.split(".")[2]
        meta = EventMeta(
            id=deterministic_id("it-raw", topic, key, str(version)),
            source=f"urn:test:{department}",
            type=f"crm.{department}.test.v1",
            subject=key,
            time=datetime(2026, 11, 30, tzinfo=UTC),
            lineage={"hub_department": department, "hub_connector": f"{department}-it"},
        )
        self.producer.produce(
            topic,
            key=key.encode(),
            value=codec.encode(value),
            headers=meta.to_headers(),  # type: ignore[arg-type]
        )

    def flush(self) -> None:
        assert self.producer.flush(15) == 0

    def close(self) -> None:
        self.flush()
        self.producer.close()  # else it lives on, reconnecting to a broker that has stopped
        self.registry.close()  # what its __exit__ calls
