"""What every measurement shares: the embedded broker, the in-process schema registry,
the scratch directory, topic creation, the input files and consumers that count what
arrives on a topic (counts come from consumed messages, never from tansu's high
watermarks, which lag the log).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from hub.broker import EmbeddedBroker, ensure_topics, free_port

log = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
PARTITIONS = 4

# generate_demo_files splits its rows 38 % EMEA CSV / 34 % US CSV / 28 % XLSX; these totals
# give exactly 100,000 CSV rows (52,778 + 47,222) and, in a second set, 20,000 XLSX rows.
CSV_SET_ROWS = 138_889
XLSX_SET_ROWS = 71_429
DATA_SEED = 11


class RegistryServer:
    """The hub's schema registry (SchemaStore + create_registry_app) served by uvicorn in a
    thread of this process, on a free port."""

    def __init__(self, bootstrap: str) -> None:
        import uvicorn

        from hub.registry.api import create_registry_app
        from hub.registry.store import SchemaStore

        self.store = SchemaStore(bootstrap)
        self.store.start()
        self.port = free_port()
        config = uvicorn.Config(
            create_registry_app(self.store),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="none",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="registry", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the schema registry did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.store.close()


class Env:
    """One broker and one registry for the whole run, and a scratch directory."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.run_id = uuid.uuid4().hex[:8]
        self.broker_log = (scratch / "tansu.log").open("wb")
        self.broker = EmbeddedBroker(log=self.broker_log)
        self.registry: RegistryServer | None = None

    def __enter__(self) -> Env:
        self.broker.start()
        self.registry = RegistryServer(self.bootstrap)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.registry is not None:
            self.registry.stop()
        self.broker.stop()
        self.broker_log.close()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def registry_url(self) -> str:
        assert self.registry is not None
        return self.registry.url

    def topic(self, name: str, partitions: int = PARTITIONS, **config: str) -> str:
        """Create ``bench.<run>.<name>`` and return its name."""
        full = f"bench.{self.run_id}.{name}"
        ensure_topics(self.bootstrap, {full: (partitions, dict(config))})
        return full

    def consumer(self, **extra: Any) -> Consumer:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",  # assign only: no group join
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
        }
        conf.update(extra)
        return Consumer(conf)

    def assign_from_start(self, consumer: Consumer, topics: list[str]) -> None:
        parts = []
        for name in topics:
            meta = consumer.list_topics(name, timeout=10).topics[name]
            parts += [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        consumer.assign(parts)

    def drain(self, topics: list[str], n: int, timeout: float = 60.0) -> list[Message]:
        """The first ``n`` messages of ``topics`` (all partitions, from the beginning)."""
        consumer = self.consumer()
        out: list[Message] = []
        try:
            self.assign_from_start(consumer, topics)
            deadline = time.monotonic() + timeout
            while len(out) < n and time.monotonic() < deadline:
                out += [m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None]
        finally:
            consumer.close()
        if len(out) < n:
            raise RuntimeError(f"only {len(out)} of {n} messages on {', '.join(topics)}")
        return out[:n]


@dataclass
class Window:
    """Messages counted on output topics: the window runs from the first consumed batch to
    the batch holding the n-th message; the first batch was produced before the window
    opened, so it is not counted in the rate."""

    wanted: int
    count: int = 0
    first_batch: int = 0
    t_launch: float = 0.0
    t_first: float | None = None
    t_last: float | None = None

    @property
    def complete(self) -> bool:
        return self.count >= self.wanted

    @property
    def seconds(self) -> float:
        if self.t_first is None or self.t_last is None:
            return 0.0
        return self.t_last - self.t_first

    @property
    def measured(self) -> int:
        return min(self.count, self.wanted) - self.first_batch

    @property
    def rate(self) -> float | None:
        return self.measured / self.seconds if self.seconds > 0 else None

    @property
    def startup(self) -> float | None:
        return None if self.t_first is None else self.t_first - self.t_launch


def count_outputs(
    consumer: Consumer,
    window: Window,
    *,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> Window:
    """Consume (already assigned) until ``window.wanted`` messages arrived or timeout."""
    deadline = time.monotonic() + timeout
    while window.count < window.wanted and time.monotonic() < deadline:
        batch = consumer.consume(10_000, timeout=0.1)
        now = time.monotonic()
        got = 0
        for msg in batch:
            err = msg.error()
            if err is None:
                got += 1
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err.str())
        if not got:
            if not alive():
                break
            continue
        if window.t_first is None:
            window.t_first, window.first_batch = now, got
        window.count += got
        window.t_last = now
    return window


# -- input files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFiles:
    csv_dir: Path  # leads_emea.csv + leads_us.csv: 100,000 data records
    xlsx_dir: Path  # leads_trade_shows.xlsx: 20,000 data records
    csv_rows: int
    xlsx_rows: int
    generated_seconds: float  # 0 when reused from the cache


def input_files(cache: Path) -> InputFiles:
    """hub.demo_data's realistic exports, generated once per version of its source and
    reused (generation is not measured)."""
    from hub import demo_data

    source = Path(demo_data.__file__).read_bytes()
    key = hashlib.sha256(source + f"{CSV_SET_ROWS}/{XLSX_SET_ROWS}/{DATA_SEED}".encode())
    root = cache / f"data-{key.hexdigest()[:12]}"
    manifest = root / "manifest.json"
    t0 = time.monotonic()
    made = not manifest.exists()
    if made:
        shutil.rmtree(root, ignore_errors=True)
        tmp = root / "tmp"
        csv_set = demo_data.generate_demo_files(tmp / "csv", rows=CSV_SET_ROWS, seed=DATA_SEED)
        xlsx_set = demo_data.generate_demo_files(tmp / "xlsx", rows=XLSX_SET_ROWS, seed=DATA_SEED)
        (root / "csv").mkdir(parents=True)
        (root / "xlsx").mkdir()
        csv_rows = xlsx_rows = 0
        for f in csv_set.files:
            if f.fmt == "csv":
                shutil.move(tmp / "csv" / f.name, root / "csv" / f.name)
                csv_rows += f.rows
        for f in xlsx_set.files:
            if f.fmt == "xlsx":
                shutil.move(tmp / "xlsx" / f.name, root / "xlsx" / f.name)
                xlsx_rows += f.rows
        shutil.rmtree(tmp)
        manifest.write_text(json.dumps({"csv_rows": csv_rows, "xlsx_rows": xlsx_rows}))
    data = json.loads(manifest.read_text())
    generated = time.monotonic() - t0 if made else 0.0
    return InputFiles(
        csv_dir=root / "csv",
        xlsx_dir=root / "xlsx",
        csv_rows=int(data["csv_rows"]),
        xlsx_rows=int(data["xlsx_rows"]),
        generated_seconds=round(generated, 1),
    )
