"""The processor worker: a faust-streaming app built by a factory (no module global).

The agent only moves data: it takes batches of raw events, hands them to the pure
ValidationStage, sends the outputs and waits for the broker's acknowledgements before the
batch's source offsets are acked (at-least-once; the outputs carry deterministic event
ids, so the projections drop any redelivered copy).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import faust

from hub import topics
from hub.processors.validation import InMessage, OutMessage, ValidationStage
from hub.settings import Settings

log = logging.getLogger(__name__)

APP_ID = "crm-hub-processors"


class ProcessorStage(Protocol):
    """What the agent drives: pure batch processing plus the topics it writes to."""

    @property
    def output_topics(self) -> tuple[str, ...]: ...

    def warm_up(self) -> None: ...

    def process(self, batch: list[InMessage]) -> list[OutMessage]: ...


def create_app(
    settings: Settings,
    *,
    app_id: str = APP_ID,
    stage: ProcessorStage | None = None,
    source_topic: str = topics.RAW_SALES_LEADS,
) -> faust.App:
    bootstrap = settings.require_bootstrap()
    datadir = settings.home / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(datadir),
        # tansu delays every group join by half the session timeout (DESIGN.md).
        broker_session_timeout=settings.consumer_session_timeout_ms / 1000,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        topic_partitions=topics.DEFAULT_PARTITIONS,
        web_enabled=False,
        producer_linger=0.005,
        stream_buffer_maxsize=max(4096, settings.processor_batch_size * 2),
    )
    if stage is None:
        from hub.dlp.operators import keyring_from_master
        from hub.processors.validation import build_dlp_stage
        from hub.serde import registry_client

        keys = keyring_from_master(settings.dlp_master_key())
        stage = ValidationStage(
            registry_client(settings.effective_registry_url),
            schemas_dir=settings.schemas_dir,
            policies_dir=settings.policies_dir,
            source_topic=source_topic,
            keys=keys,
            dlp=build_dlp_stage(
                settings.schemas_dir,
                settings.policies_dir,
                keys,
                department="sales",
                topic=topics.CLEAN_SALES_LEADS,
                backend=settings.dlp_backend,
            ),
        )
    stage.warm_up()
    raw_kw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(source_topic, key_type=bytes, value_type=bytes, **raw_kw)
    outputs = {name: app.topic(name, **raw_kw) for name in stage.output_topics}
    batch_size = settings.processor_batch_size
    within = settings.processor_batch_within

    @app.agent(source, name="validate-sales-leads")
    async def validate(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in stream.take_events(batch_size, within):  # type: ignore[attr-defined]
            batch = [
                InMessage(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value,
                    list(e.message.headers or []),
                )
                for e in events
            ]
            pending = []
            for out in stage.process(batch):
                fut = await outputs[out.topic].send(
                    key=out.key, value=out.value, headers=out.headers, force=True
                )
                pending.append(fut)
            # Durable before the source offsets of this batch are acked and committed.
            await asyncio.gather(*pending)
            yield None

    return app


def run_processor_worker(settings: Settings) -> None:
    """Blocking entry point of `crmhub worker processor` (mode handles SIGTERM/SIGINT)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # Faust's progress spinner sets the root logger to DEBUG for the whole run: every
    # aiokafka debug record (which quotes keys and values) would be built, and any handler
    # without its own level would write personal data. No spinner, no DEBUG.
    worker.spinner = None
    worker.execute_from_commandline()
