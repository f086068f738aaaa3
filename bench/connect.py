"""The connector platform (issue 6): framework overhead, REST latency, rebalance time.

- **Framework overhead**: a connector that yields records already in memory (realistic
  LeadCaptured values, a cursor on every record) through ``ConnectorRunner`` — deterministic
  event id, Avro (Confluent wire format), CloudEvents + lineage headers, acks=all, cursor
  commits every ``chunk_size`` records — compared with the raw produce ceiling.
- **REST**: ``GET /connectors/{name}/status`` and ``/config`` with 100 connectors registered,
  through a real uvicorn server and one keep-alive HTTP client; p50/p95/p99.
- **Rebalance**: two ``crmhub worker connect`` subprocesses share four connectors; kill -9 of
  the one running a connector; seconds until the other reports it RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from bench.env import Env
from bench.report import Row
from hub.settings import Settings

OVERHEAD_RECORDS = 200_000
REST_CONNECTORS = 100
REST_CALLS = 2_000


def _lead(i: int) -> dict[str, Any]:
    return {
        "lead_id": f"M-{i:08d}",
        "first_name": "Ada",
        "last_name": f"Lovelace{i % 977}",
        "email": f"ada{i}@example.com",
        "phone": "(415) 555-0123",
        "company": "Analytical Engines Ltd",
        "job_title": "Head of Computing",
        "country": "GB",
        "lead_source": "Trade show",
        "lead_status": "New",
        "created_on": "2024-03-05",
        "owner": "emea-team",
        "notes": None,
        "source_file": "memory",
        "source_row": i,
    }


class MemoryConnector:
    """Records already in memory: what the framework costs without any source."""

    department = "sales"

    def __init__(self, name: str, topic: str, values: Sequence[dict[str, Any]]) -> None:
        from hub.sdk.streams import Stream

        self.name = name
        self.values = values
        self._streams = (
            Stream(
                name="leads",
                topic=topic,
                event_type="crm.sales.lead.captured.v1",
                schema="sales/LeadCaptured",
                primary_key=("lead_id",),
            ),
        )

    def streams(self) -> Sequence[Any]:
        return self._streams

    def check(self) -> None:
        return None

    def partitions(self, offsets: Any) -> list[Any]:
        from hub.sdk.streams import resume_partition

        return [resume_partition(offsets, self.name, {"stream": "leads"})]

    def fetch(self, part: Any) -> Iterator[Any]:
        from hub.sdk.streams import SourceRecord

        for i, value in enumerate(self.values):
            yield SourceRecord(
                record_id=f"memory:{i}",
                value=value,
                key=value["lead_id"],
                cursor={"position": i},
            )


def framework_overhead(env: Env, settings: Settings, n: int = OVERHEAD_RECORDS) -> Row:
    from bench.stages import timed_run_once
    from hub.connect import ConnectorRunner
    from hub.connect_offsets import OffsetStore
    from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path

    schema_text = load_schema_text(schema_path(settings.schemas_dir, "sales/LeadCaptured"))
    known = {f["name"] for f in json.loads(schema_text)["fields"]}
    values = [{k: v for k, v in _lead(i).items() if k in known} for i in range(n)]
    topic = env.topic("connect.overhead")
    registry = registry_client(env.registry_url)
    codec = AvroCodec(registry, topic, schema_text)
    quarantine = AvroCodec(
        registry,
        env.topic("connect.overhead.quarantine"),
        load_schema_text(schema_path(settings.schemas_dir, "common/QuarantineRecord")),
    )
    offsets = OffsetStore(env.bootstrap, env.topic("connect.overhead.offsets", 1))
    runner = ConnectorRunner(
        MemoryConnector(f"bench-memory-{env.run_id}", topic, values),
        bootstrap=env.bootstrap,
        codec=codec,
        quarantine_codec=quarantine,
        offsets=offsets,
    )
    handled, seconds = timed_run_once(runner, topic, (codec, quarantine))
    assert handled == n, f"{handled} of {n}"
    return Row(
        "connect.overhead",
        "Connector framework, in-memory records",
        n / seconds,
        "records/s",
        count=n,
        seconds=seconds,
        ceiling="ceiling.produce",
        target=">= 80 % of raw produce",
        target_ratio=0.80,
        note=(
            f"{n:,} LeadCaptured values built before the timer, yielded by a connector "
            "through ConnectorRunner.run_once(): event id, Avro encode, CloudEvents + lineage "
            "headers, acks=all, cursor committed every 5,000 records and at the end; the "
            "timer stops when the final commit is acknowledged."
        ),
    )


def rest_latency(env: Env, settings: Settings) -> list[Row]:
    import httpx
    import uvicorn

    from hub.broker import free_port
    from hub.connect_api import create_connect_app
    from hub.connect_state import ConnectState

    suffix = uuid.uuid4().hex[:8]
    state = ConnectState(
        env.bootstrap,
        configs_topic=f"_bench-configs-{suffix}",
        status_topic=f"_bench-status-{suffix}",
        offsets_topic=f"_bench-offsets-{suffix}",
    ).start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_connect_app(state),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    drop = env.scratch / "rest-drop"
    drop.mkdir(exist_ok=True)
    rows: list[Row] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for i in range(REST_CONNECTORS):
                config = {
                    "connector.class": "spreadsheet",
                    "drop.dir": str(drop),
                    "mapping": str(settings.lead_mapping),
                }
                answer = http.put(f"/connectors/rest-{i:03d}/config", json=config)
                assert answer.status_code in (200, 201), answer.text
            for path, label in (("status", "status"), ("config", "config")):
                samples = []
                for i in range(REST_CALLS):
                    t = time.perf_counter()
                    answer = http.get(f"/connectors/rest-{i % REST_CONNECTORS:03d}/{path}")
                    samples.append(time.perf_counter() - t)
                    assert answer.status_code == 200
                samples.sort()
                p95 = samples[int(len(samples) * 0.95)] * 1000
                rows.append(
                    Row(
                        f"connect.rest.{path}",
                        f"REST GET /connectors/{{name}}/{label}, p95",
                        p95,
                        "ms",
                        count=len(samples),
                        seconds=sum(samples),
                        target="p95 < 20 ms",
                        met=p95 < 20,
                        note=(
                            f"{REST_CONNECTORS} connectors registered (no worker); {len(samples):,}"
                            f" calls over one keep-alive client: p50 "
                            f"{statistics.median(samples) * 1000:.2f} ms, p95 {p95:.2f} ms, p99 "
                            f"{samples[int(len(samples) * 0.99)] * 1000:.2f} ms."
                        ),
                    )
                )
    finally:
        server.should_exit = True
        thread.join(10)
        state.close()
    return rows


def rebalance(env: Env, settings: Settings) -> Row:
    """Two connect workers on a fresh group; kill -9 the owner of a connector; time until the
    survivor reports it RUNNING."""
    from hub.connect_state import ConnectState

    home = env.scratch / "rebalance"
    home.mkdir(exist_ok=True)
    drop = home / "drop"
    drop.mkdir(exist_ok=True)
    with ConnectState(env.bootstrap).start() as state:
        for i in range(4):
            config = {
                "connector.class": "spreadsheet",
                "drop.dir": str(drop),
                "mapping": str(settings.lead_mapping),
                "topic": env.topic("rebalance.raw"),
            }
            state.put_config(f"rebalance-{i}", config, initial_target="STARTED")
        env_vars = {
            **os.environ,
            "HUB_KAFKA_BOOTSTRAP": env.bootstrap,
            "HUB_SCHEMA_REGISTRY_URL": env.registry_url,
            "HUB_DEFAULT_CONNECTOR": "false",
            "HUB_CONFIG_FILE": str(home / "absent.yaml"),
        }
        procs = []
        for name in ("a", "b"):
            (home / name).mkdir(exist_ok=True)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "worker", "connect"],
                    cwd=home / name,
                    env={**env_vars, "HUB_HOME": str(home / name)},
                    stdout=(home / f"{name}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            owner = _wait_owner(state, "rebalance-0", None, 60)
            pid = int(owner.rsplit(":", 1)[1])
            victim = next(p for p in procs if p.pid == pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            t0 = time.monotonic()
            _wait_owner(state, "rebalance-0", owner, 60)
            seconds = time.monotonic() - t0
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(30)
    return Row(
        "connect.rebalance",
        "Rebalance after kill -9 of one of two connect workers",
        seconds,
        "s",
        count=1,
        seconds=seconds,
        target="<= 15 s",
        met=seconds <= 15,
        note=(
            f"session timeout {settings.consumer_session_timeout_ms} ms: the coordinator "
            "notices the dead member after it; tansu then holds the rejoin for half of it; "
            "then the survivor starts the connector."
        ),
    )


def _wait_owner(state: Any, name: str, not_owner: str | None, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = state.connector_status(name)
        if status is not None and status.state == "RUNNING" and status.worker_id != not_owner:
            return str(status.worker_id)
        time.sleep(0.05)
    raise RuntimeError(f"{name}: no RUNNING owner within {timeout:.0f} s")


__all__ = ["framework_overhead", "rebalance", "rest_latency"]


def _main() -> None:  # python -m bench.connect: just these rows
    import logging

    from bench.chain import bench_settings
    from bench.env import OUT_DIR
    from bench.report import print_table, resolve

    logging.basicConfig(level=logging.WARNING)
    scratch = OUT_DIR / f"connect-{time.strftime('%Y%m%dT%H%M%S')}"
    scratch.mkdir(parents=True)
    with Env(scratch) as env:
        settings = bench_settings(
            home=scratch / "hub",
            kafka_bootstrap=env.bootstrap,
            schema_registry_url=env.registry_url,
        )
        from bench import ceilings

        rows = [ceilings.raw_produce(env, env.topic("ceiling.in"))]
        rows.append(framework_overhead(env, settings))
        rows += rest_latency(env, settings)
        rows.append(rebalance(env, settings))
    resolve(rows)
    print_table(rows)


if __name__ == "__main__":
    _main()
