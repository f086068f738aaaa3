"""The processor worker: a faust-streaming app built by a factory (no module global).

The agent only moves data. It takes batches of raw events, hands each to the stage, sends
the outputs in batch order, and acknowledges a batch's source events only once the broker
has acknowledged every output of that batch, so a source offset is never committed before
its outputs are durable (at-least-once; the outputs carry deterministic event ids, so the
projections drop any redelivered copy). A batch's outputs go out only after the previous
batch's are acknowledged, so the per-key order of the source partition holds on the output
topics, also when a send fails.

The hub's chain (a ``StageRecipe``) runs in a worker process (``StageProcess``) and the
agent pipelines it: while the loop sends batch N and waits for the broker, the worker
process already works on the next batches (up to ``MAX_BATCHES_IN_FLIGHT`` taken and not
yet acknowledged). A stage object runs inline, one batch at a time (``take_events``); the
benchmark's passthrough stage does, so it measures the plain agent loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import start_http_server

from hub import topics
from hub.events import Headers
from hub.processors.stage_runners import (
    InlineStage,
    ProcessorStage,
    RawIn,
    RawOut,
    StageProcess,
    StageRecipe,
)
from hub.processors.validation import (
    HR_EMPLOYEES,
    HR_ERASURES,
    MARKETING_EMAIL_EVENTS,
    SERVICE_TICKETS,
    Flow,
    InMessage,
    build_flow_stage,
    build_sales_lead_stage,
)
from hub.settings import Settings

__all__ = ["APP_ID", "MAX_BATCHES_IN_FLIGHT", "create_app", "run_processor_worker"]

APP_ID = "crm-hub-processors"
#: Batches taken from the stream and not yet acknowledged: one being sent, the others in
#: (or queued for) the stage. Bounds memory and redelivery after a crash.
MAX_BATCHES_IN_FLIGHT = 4


def sales_lead_recipe(
    settings: Settings, source_topic: str = topics.RAW_SALES_LEADS
) -> StageRecipe:
    """The hub's processor chain (validation + DLP), to be built in the worker process."""
    return StageRecipe(
        build_sales_lead_stage,
        {"settings": settings, "source_topic": source_topic},
        output_topics=(
            topics.CLEAN_SALES_LEADS,
            topics.QUARANTINE,
            topics.DLP_INCIDENTS,
            topics.DLP_VAULT,
        ),
    )


def create_app(
    settings: Settings,
    *,
    app_id: str = APP_ID,
    stage: ProcessorStage | StageRecipe | None = None,
    source_topic: str = topics.RAW_SALES_LEADS,
) -> faust.App:
    """The processor app. ``stage``: a recipe runs in a worker process (default: the hub's
    chain), a stage object runs inline on the event loop. The stage is started here (the
    worker process built and warmed up), so a bad policy or registry fails before Faust
    starts."""
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
    hub_chain = stage is None
    if stage is None:
        stage = sales_lead_recipe(settings, source_topic)
    runner = StageProcess(stage) if isinstance(stage, StageRecipe) else InlineStage(stage)
    runner.start()
    raw_kw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(source_topic, key_type=bytes, value_type=bytes, **raw_kw)
    outputs = {name: app.topic(name, **raw_kw) for name in runner.output_topics}
    batch_size = settings.processor_batch_size
    within = settings.processor_batch_within

    agent: Callable[[faust.StreamT[bytes]], Any]
    if isinstance(runner, StageProcess):
        agent = _pipelined_agent(runner, outputs, batch_size, within)
    else:
        agent = _inline_agent(runner, outputs, batch_size, within)
    app.agent(source, name="validate-sales-leads")(agent)
    if hub_chain:  # the hub's own chain; a given stage (bench, tests) runs alone
        from hub.processors.marketing import add_marketing_agents

        add_marketing_agents(app, settings)
        for flow in INLINE_FLOWS:
            add_flow_agent(app, settings, flow)
    return app


#: Flows whose chain runs on the event loop (their volume is a fraction of sales'):
#: marketing e-mail events, service tickets, HR employees and HR erasures.
INLINE_FLOWS = (MARKETING_EMAIL_EVENTS, SERVICE_TICKETS, HR_EMPLOYEES, HR_ERASURES)


def add_flow_agent(app: faust.App, settings: Settings, flow: Flow) -> None:
    """One agent that runs ``flow``'s chain (rules, DLP) inline, batch by batch. Built
    (registry, policies) here, so a bad policy fails before Faust starts."""
    runner = InlineStage(build_flow_stage(settings, flow))
    runner.start()
    raw_kw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(flow.source_topic, key_type=bytes, value_type=bytes, **raw_kw)
    outputs = {name: app.topic(name, **raw_kw) for name in runner.output_topics}
    agent = _inline_agent(
        runner, outputs, settings.processor_batch_size, settings.processor_batch_within
    )
    app.agent(source, name=f"validate-{flow.name}")(agent)


Outputs = dict[str, faust.TopicT]


def _batch(events: Sequence[EventT[bytes]]) -> list[RawIn]:
    return [
        (
            e.message.topic,
            e.message.partition,
            e.message.offset,
            e.message.key,
            e.message.value,
            _headers(e.message.headers),
        )
        for e in events
    ]


def _headers(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Headers:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers or ())


async def _send(outputs: Outputs, messages: list[RawOut]) -> None:
    """Send in order and wait until the broker has acknowledged every message."""
    acks = [
        await outputs[topic].send(key=key, value=value, headers=headers, force=True)
        for topic, key, value, headers in messages
    ]
    await asyncio.gather(*acks)


def _inline_agent(
    runner: InlineStage, outputs: Outputs, batch_size: int, within: float
) -> Callable[[faust.StreamT[bytes]], AsyncIterator[None]]:
    """One batch at a time on the event loop: stage, send, wait for the acknowledgements;
    take_events acknowledges the batch's events when the next batch is taken."""

    stage = runner.stage

    async def validate(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in stream.take_events(batch_size, within):  # type: ignore[attr-defined]
            batch = [
                InMessage(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value,
                    _headers(e.message.headers),
                )
                for e in events
            ]
            await _send(
                outputs, [(o.topic, o.key, o.value, o.headers) for o in stage.process(batch)]
            )
            yield None

    return validate


def _pipelined_agent(
    runner: StageProcess, outputs: Outputs, batch_size: int, within: float
) -> Callable[[faust.StreamT[bytes]], Coroutine[Any, Any, None]]:
    """The stage in the worker process, ahead of the loop: while the loop sends batch N and
    waits for its acknowledgements, the worker process already works on the next ones."""

    async def validate(stream: faust.StreamT[bytes]) -> None:
        slots = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        # One batch waits for the sender at most: while it does, the take below does not
        # start, so the stream's buffer fills and the next batch is a full one.
        taken: asyncio.Queue[tuple[Sequence[EventT[bytes]], asyncio.Task[list[RawOut]]]]
        taken = asyncio.Queue(maxsize=1)

        async def send_in_order() -> None:
            while True:
                events, result = await taken.get()
                # Durable before this batch's source offsets are acknowledged, and before the
                # next batch's outputs go out: a failed send can never leave a later event
                # of the same key ahead of an earlier one on the output topics.
                await _send(outputs, await result)
                for event in events:
                    await stream.ack(event)
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(send_in_order())
                # noack_take: the events are acknowledged above, not when the next batch is
                # taken (take_events would, before this batch's outputs are durable).
                async for events in stream.noack_take(batch_size, within):  # type: ignore[attr-defined]
                    await slots.acquire()
                    await taken.put((events, group.create_task(runner.process(_batch(events)))))
        except ExceptionGroup as failed:  # the agent crashes with the cause itself
            raise _first_cause(failed) from None
        finally:
            runner.close()

    return validate


def _first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_cause(first) if isinstance(first, BaseExceptionGroup) else first


def run_processor_worker(settings: Settings) -> None:
    """Blocking entry point of `crmhub worker processor` (mode handles SIGTERM/SIGINT)."""
    app = create_app(settings)
    port = os.environ.get("HUB_METRICS_PORT")
    if port:  # Prometheus: the agents' own metrics (the sales stage's are in its process)
        start_http_server(int(port))
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # Faust's progress spinner sets the root logger to DEBUG for the whole run: every
    # aiokafka debug record (which quotes keys and values) would be built, and any handler
    # without its own level would write personal data. No spinner, no DEBUG.
    worker.spinner = None
    worker.execute_from_commandline()
