"""The hub's own stages, measured with the real code: the spreadsheet connector through the
ConnectorRunner, and the ValidationStage alone (no Kafka)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Message

from bench.env import Env
from bench.report import Row
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.connect import ConnectorRunner
    from hub.serde import AvroCodec

VALIDATION_BATCH = 500  # Settings.processor_batch_size default: what the agent hands over
PURE_SAMPLE = 40_000  # events timed in-process (the agent rows use all of them)


@dataclass
class ConnectorResult:
    row: Row
    published: int  # records on the entity topic
    quarantined: int  # records on the connector's quarantine topic


def run_connector(
    env: Env,
    settings: Settings,
    *,
    key: str,
    label: str,
    drop_dir: Path,
    topic: str,
    quarantine_topic: str,
    note: str = "",
) -> ConnectorResult:
    from connectors.spreadsheet.connector import SpreadsheetConfig, SpreadsheetConnector
    from hub.connect import ConnectorRunner
    from hub.connect_offsets import OffsetStore
    from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path

    registry = registry_client(env.registry_url)
    name = f"bench-{key.rsplit('.', 1)[-1]}-{env.run_id}"
    connector = SpreadsheetConnector(
        SpreadsheetConfig(
            name=name,
            drop_dir=drop_dir,
            mapping=settings.lead_mapping,
            topic=topic,
            settle_seconds=0,
        )
    )
    codec = AvroCodec(
        registry, topic, load_schema_text(schema_path(settings.schemas_dir, "sales/LeadCaptured"))
    )
    q_codec = AvroCodec(
        registry,
        quarantine_topic,
        load_schema_text(schema_path(settings.schemas_dir, "common/QuarantineRecord")),
    )
    offsets = OffsetStore(env.bootstrap, topic=env.topic(f"offsets-{key}", 1, **_COMPACT))
    offsets.load()
    runner = ConnectorRunner(
        connector, bootstrap=env.bootstrap, codec=codec, quarantine_codec=q_codec, offsets=offsets
    )
    handled, seconds = timed_run_once(runner, topic, (codec, q_codec))
    committed = offsets.all_for(name)
    published = sum(int(v.get("published", 0)) for _, v in committed)
    quarantined = sum(int(v.get("quarantined", 0)) for _, v in committed)
    files = ", ".join(sorted(str(p["file"]) for p, _ in committed))
    row = Row(
        key,
        label,
        handled / seconds,
        "rows/s",
        count=handled,
        seconds=seconds,
        ceiling="ceiling.produce",
        note=(
            f"{handled:,} rows from {files} ({published:,} published, {quarantined:,} "
            "quarantined by the connector): SpreadsheetConnector through ConnectorRunner "
            "(fingerprint, read, map, Avro encode, CloudEvents headers, acks=all, offsets "
            "committed every 5,000 rows); run_once() returns after the final flush and "
            f"offset commit. Schemas registered and producer connected before the timer. {note}"
        ).strip(),
        extra={"published": published, "quarantined": quarantined},
    )
    return ConnectorResult(row, published, quarantined)


_COMPACT = {"cleanup.policy": "compact"}


def timed_run_once(
    runner: ConnectorRunner, topic: str, codecs: tuple[AvroCodec, ...]
) -> tuple[int, float]:
    """``runner.run_once()``: records handled and seconds. Before the timer, the schemas of
    `codecs` are registered and the producer connected; after it, the runner is closed (its
    clients would outlive the broker, logging refused connections)."""
    try:
        for codec in codecs:
            _ = codec.schema_id
        runner.producer.list_topics(topic, timeout=10)
        t0 = time.monotonic()
        handled = runner.run_once()
        return handled, time.monotonic() - t0
    finally:
        runner.close()


def pure_validation(
    env: Env,
    settings: Settings,
    messages: list[Message],
    *,
    source: str,
    clean: str,
    quarantine: str,
    incidents: str,
    dlp: bool = True,
    dlp_backend: str = "auto",
) -> Row:
    """The processor chain's process() on batches of VALIDATION_BATCH raw events already in
    memory: decode + rules (+ DLP) + encode, no Kafka. The first batch is warm-up."""
    from bench.chain import validation_chain
    from hub.processors.validation import InMessage

    stage, description = validation_chain(
        settings,
        env.registry_url,
        source=source,
        clean=clean,
        quarantine=quarantine,
        incidents=incidents,
        dlp=dlp,
        dlp_backend=dlp_backend,
    )
    stage.warm_up()
    inputs = [
        InMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or [])  # type: ignore[arg-type]
        for m in messages[: PURE_SAMPLE + VALIDATION_BATCH]
    ]
    batches = [inputs[i : i + VALIDATION_BATCH] for i in range(0, len(inputs), VALIDATION_BATCH)]
    stage.process(batches[0])  # warm-up: caches of the codecs, rules and phone metadata
    measured = batches[1:]
    count = sum(len(b) for b in measured)
    outputs = 0
    t0 = time.monotonic()
    for batch in measured:
        outputs += len(stage.process(batch))
    seconds = time.monotonic() - t0
    key = "stage.validation_pure" if dlp else "stage.validation_rules_pure"
    return Row(
        key,
        f"{description}.process alone (no Kafka)",
        count / seconds,
        "events/s",
        count=count,
        seconds=seconds,
        ceiling="faust.passthrough",
        note=(
            f"The first {count:,} raw events the connector published (after one warm-up batch) "
            f"in batches of {VALIDATION_BATCH}, in this process: decode + rules"
            + (" + DLP" if "DLP" in description else "")
            + f" + encode, {outputs:,} outputs (incidents included). No Kafka: the stage's "
            "own CPU cost, which the agent pays inline on top of the framework's."
        ),
        extra={"chain": description},
    )
