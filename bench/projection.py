"""Projections: the real ProjectionWorker (a thread of this process) over the validation
stage's outputs into a fresh SQLite file and a fresh PostgreSQL schema, measured by polling
``ProjectionStore.counts()``; and ``ProjectionStore.apply`` alone (no Kafka) for comparison."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

from confluent_kafka import Message
from sqlalchemy import text

from bench.env import Env
from bench.report import Row, not_measured
from hub.events import EventMeta
from hub.settings import Settings

TARGET = 20_000
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
APPLY_BATCH = 2000  # ProjectionWorker's default batch size
POLL = 0.1


@contextmanager
def sqlite_db(env: Env) -> Iterator[str]:
    yield f"sqlite:///{env.scratch / f'projection-{uuid.uuid4().hex[:8]}.db'}"


@contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema, dropped afterwards; yields the URL whose search_path is it."""
    from projections.db import make_engine

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = make_engine(base_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def database(env: Env, backend: str, pg_url: str | None) -> AbstractContextManager[str]:
    """A fresh database of ``backend`` ("sqlite" or "postgres"); yields its URL."""
    return sqlite_db(env) if backend == "sqlite" else pg_schema(pg_url or "")


def pg_unreachable(base_url: str) -> str | None:
    """None when the server answers, else a short reason."""
    import psycopg

    try:
        with psycopg.connect(base_url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "skip PostgreSQL"
        return f"PostgreSQL at {base_url} unreachable ({exc.__class__.__name__})"
    return None


def run_worker(
    env: Env, settings: Settings, url: str, *, leads: str, quarantine: str, expected: int
) -> tuple[float | None, int, float, str]:
    """(rate, measured events, seconds, note) of the ProjectionWorker into ``url``."""
    from hub.gc_policy import streaming_gc
    from hub.serde import registry_client
    from projections.db import make_engine, migrate
    from projections.store import ProjectionStore, ProjectionTopics
    from projections.worker import ProjectionWorker

    migrate(url)
    wsettings = settings.model_copy(update={"database_url": url})
    topics = ProjectionTopics(leads, quarantine)
    worker = ProjectionWorker(
        wsettings,
        topics=topics,
        group_id=f"bench-projections-{uuid.uuid4().hex[:8]}",
        registry=registry_client(env.registry_url),
    )
    engine = make_engine(url)
    probe = ProjectionStore(engine, audit_key=settings.audit_key_bytes(), topics=topics)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="projection", daemon=True)
    t_launch = time.monotonic()
    t_first = t_last = None
    cpu_first = cpu_last = 0.0
    first = applied = 0
    deadline = t_launch + 120
    # The garbage-collector settings the worker's own process runs with.
    with streaming_gc():
        thread.start()
        try:
            while applied < expected and time.monotonic() < deadline and thread.is_alive():
                time.sleep(POLL)
                applied = int(probe.counts()["audit_entries"])
                now, cpu = time.monotonic(), time.process_time()
                if applied and t_first is None:
                    t_first, first, cpu_first = now, applied, cpu
                if applied:
                    t_last, cpu_last = now, cpu
        finally:
            stop.set()
            thread.join(30)
            engine.dispose()
    if t_first is None or t_last is None or applied < expected or t_last <= t_first:
        return None, applied, 0.0, f"{applied:,} of {expected:,} events applied before timeout"
    seconds = t_last - t_first
    cpu_us = (cpu_last - cpu_first) / (applied - first) * 1e6
    note = (
        f"ProjectionWorker (thread, confluent-kafka consume, Avro decode, apply in batches of "
        f"{worker.batch_size}) over {expected:,} events of the validation outputs; "
        f"ProjectionStore.counts() polled every {POLL:.1f} s: window from the first poll "
        f"that saw rows ({first:,} applied, not counted) to the poll that saw all "
        f"{expected:,}. Start-up excluded: {t_first - t_launch:.1f} s (group join). "
        "Garbage-collector settings as in the worker's process (streaming_gc). "
        f"CPU of this process in the window (worker threads, librdkafka, the poller; not "
        f"the broker's nor PostgreSQL's): {cpu_us:.0f} µs per event."
    )
    return (applied - first) / seconds, applied - first, seconds, note


def decode_items(env: Env, settings: Settings, messages: list[Message]) -> list[object]:
    """ConsumedEvents as the worker builds them (decoding is not timed for apply alone)."""
    from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path
    from projections.store import ConsumedEvent

    reg = registry_client(env.registry_url)
    schema = {"leads": "sales/Lead", "quarantine": "common/QuarantineRecord"}
    codecs: dict[str, AvroCodec] = {}
    items: list[object] = []
    for m in messages:
        topic = cast(str, m.topic())
        codec = codecs.get(topic)
        if codec is None:
            kind = "quarantine" if "quarantine" in topic else "leads"
            text_ = load_schema_text(schema_path(settings.schemas_dir, schema[kind]))
            codec = codecs[topic] = AvroCodec(reg, topic, text_)
        raw = cast(bytes, m.value())
        key = m.key()
        items.append(
            ConsumedEvent(
                topic,
                cast(int, m.partition()),
                cast(int, m.offset()),
                key.decode() if isinstance(key, bytes) else key,
                EventMeta.from_headers(m.headers()),  # type: ignore[arg-type]
                codec.decode(raw),
                raw,
            )
        )
    return items


def apply_alone(
    settings: Settings, url: str, items: list[object], *, leads: str, quarantine: str
) -> tuple[float, int, float]:
    from projections.db import make_engine, migrate
    from projections.store import ProjectionStore, ProjectionTopics

    migrate(url)
    engine = make_engine(url)
    store = ProjectionStore(
        engine, audit_key=settings.audit_key_bytes(), topics=ProjectionTopics(leads, quarantine)
    )
    batches = [items[i : i + APPLY_BATCH] for i in range(0, len(items), APPLY_BATCH)]
    try:
        store.apply(batches[0])  # type: ignore[arg-type]  # warm-up: pool, compiled SQL
        count = 0
        t0 = time.monotonic()
        for batch in batches[1:]:
            count += store.apply(batch).audited  # type: ignore[arg-type]
        seconds = time.monotonic() - t0
    finally:
        engine.dispose()
    return count / seconds, count, seconds


def projection_rows(
    env: Env,
    settings: Settings,
    *,
    leads: str,
    quarantine: str,
    messages: list[Message],
    pg_url: str | None,
) -> list[Row]:
    expected = len(messages)
    rows: list[Row] = []
    backends = [("sqlite", "SQLite")]
    reason = "disabled (--no-postgres)" if pg_url is None else pg_unreachable(pg_url)
    if pg_url is not None and reason is None:
        backends.append(("postgres", "PostgreSQL"))
    for name, label in backends:
        wkey, akey = f"projection.{name}", f"projection.{name}.apply"
        target = {"target": f"≥ {TARGET:,}/s", "target_rate": TARGET}
        with database(env, name, pg_url) as url:
            rate, count, seconds, note = run_worker(
                env, settings, url, leads=leads, quarantine=quarantine, expected=expected
            )
        if rate is None:
            rows.append(not_measured(wkey, f"Projection worker → {label}", "events/s", note))
        else:
            rows.append(
                Row(
                    wkey,
                    f"Projection worker → {label}",
                    rate,
                    "events/s",
                    count=count,
                    seconds=seconds,
                    ceiling=akey,
                    note=note,
                    **target,  # type: ignore[arg-type]
                )
            )
        # Decoded only now, and dropped after: 100k decoded events kept alive while the
        # worker runs would cost the worker's garbage collector time the worker does not
        # have in its own process.
        items = decode_items(env, settings, messages)
        with database(env, name, pg_url) as url:
            a_rate, a_count, a_seconds = apply_alone(
                settings, url, items, leads=leads, quarantine=quarantine
            )
        del items
        rows.append(
            Row(
                akey,
                f"ProjectionStore.apply alone → {label}",
                a_rate,
                "events/s",
                count=a_count,
                seconds=a_seconds,
                note=(
                    f"The same {expected:,} events decoded beforehand (not timed), applied in "
                    f"batches of {APPLY_BATCH} to a fresh database; first batch is warm-up. "
                    "The database-side bound of the worker above."
                ),
            )
        )
    if reason is not None:
        for key, label in (
            ("projection.postgres", "Projection worker → PostgreSQL"),
            ("projection.postgres.apply", "ProjectionStore.apply alone → PostgreSQL"),
        ):
            rows.append(not_measured(key, label, "events/s", reason, target=f"≥ {TARGET:,}/s"))
    return rows
