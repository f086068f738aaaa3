"""Where the processor agent runs its stage: in a worker process, or inline.

The stage is CPU-bound pure Python (Avro, rules, DLP); run inline it stops the event loop
for as long as a batch takes, and the loop's own work (fetching, sending, acknowledgements)
waits. ``StageProcess`` runs it in one child process instead, so the Faust event loop only
moves data: the agent hands it a batch of consumed messages as plain tuples of bytes and
gets the messages to produce back, in the same order. ``InlineStage`` runs a stage object on
the event loop (the benchmark's passthrough stage, tests).

The child is built from a ``StageRecipe`` (a module-level factory and picklable arguments),
started with the ``spawn`` method (no fork of a process that runs an event loop and client
threads), and its lifetime belongs to the parent: it ignores SIGINT and SIGTERM (the parent
stops it after draining), and it exits by itself when the parent dies, even by SIGKILL, so
it is never left behind. A child that dies is a ``RetriableError`` for the batch in hand; the
next batch starts a new child.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_handles
from typing import Any, Protocol

from hub.errors import ConfigError, RetriableError
from hub.events import Headers
from hub.gc_policy import use_streaming_gc
from hub.processors.validation import InMessage, OutMessage

log = logging.getLogger(__name__)

#: A consumed message as the child gets it: topic, partition, offset, key, value, headers.
RawIn = tuple[str, int, int, bytes | None, bytes | None, Headers]
#: A message to produce as the child returns it: topic, key, value, headers.
RawOut = tuple[str, bytes, bytes, Headers]


class ProcessorStage(Protocol):
    """What the agent drives: pure batch processing plus the topics it writes to."""

    @property
    def output_topics(self) -> tuple[str, ...]: ...

    def warm_up(self) -> None: ...

    def process(self, batch: list[InMessage]) -> list[OutMessage]: ...


@dataclass(frozen=True)
class StageRecipe:
    """How to build a stage in another process: ``factory(**kwargs)``. The factory must be a
    module-level function and the arguments picklable (they cross a process boundary)."""

    factory: Callable[..., ProcessorStage]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: The topics the stage writes to (the agent declares them before the child exists).
    output_topics: tuple[str, ...] = ()


class InlineStage:
    """A stage object run on the event loop."""

    def __init__(self, stage: ProcessorStage) -> None:
        self.stage = stage

    @property
    def output_topics(self) -> tuple[str, ...]:
        return self.stage.output_topics

    def start(self) -> None:
        self.stage.warm_up()

    async def process(self, batch: Sequence[RawIn]) -> list[RawOut]:
        outputs = self.stage.process([InMessage(*m) for m in batch])
        return [(o.topic, o.key, o.value, o.headers) for o in outputs]

    def close(self) -> None:
        return None


class StageProcess:
    """One child process that runs a stage; ``process`` is awaitable from the event loop."""

    def __init__(self, recipe: StageRecipe) -> None:
        self.recipe = recipe
        self._pool: ProcessPoolExecutor | None = None

    @property
    def output_topics(self) -> tuple[str, ...]:
        return self.recipe.output_topics

    @property
    def running(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        """Start the child and wait until its stage is built and warmed up. A bad policy or
        an unreachable registry raises here, in the parent, as the inline stage would."""
        if self._pool is not None:
            return
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_child,
            initargs=(self.recipe,),
        )
        try:
            pool.submit(_check_child).result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise ConfigError("the processor stage's worker process died while starting") from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        self._pool = pool
        log.info("processor stage running in worker process")

    async def process(self, batch: Sequence[RawIn]) -> list[RawOut]:
        """The stage's outputs for ``batch``, computed in the child."""
        if self._pool is None:
            await asyncio.get_running_loop().run_in_executor(None, self.start)
        assert self._pool is not None
        try:
            return await asyncio.wrap_future(self._pool.submit(_process_in_child, list(batch)))
        except BrokenProcessPool:
            self.close()
            raise RetriableError(
                "the processor stage's worker process died; a new one starts with the next batch",
                retry_after=0,
            ) from None

    def close(self) -> None:
        """Stop the child after the batch it is on (queued batches are dropped: their
        source offsets were never acknowledged, so they are consumed again)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# -- the child side -------------------------------------------------------------------------

# The stage of this worker process, built by the pool's initializer. Module state of the
# child only: the parent never sets it.
_child_stage: ProcessorStage | None = None
_child_error: BaseException | None = None


def _init_child(recipe: StageRecipe) -> None:
    global _child_stage, _child_error  # noqa: PLW0603 - the worker process's one stage
    # The parent owns this process's lifetime: a Ctrl-C or a SIGTERM to the whole process
    # group must not kill a batch halfway; the parent drains and then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # `kill -USR1` prints every thread's stack (code locations, never values) to stderr,
    # as the Faust worker that owns this process does with its tasks.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    _exit_with_parent()
    try:
        stage = recipe.factory(**recipe.kwargs)
        stage.warm_up()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent by _check_child
        _child_error = exc
        return
    _child_stage = stage
    # From here on this process only runs batches (hub.gc_policy); it lives as long as
    # the stage, so the settings are never restored.
    use_streaming_gc(freeze=True)


def _check_child() -> None:
    if _child_error is not None:
        raise _child_error


def _process_in_child(batch: list[RawIn]) -> list[RawOut]:
    stage = _child_stage
    if stage is None:
        raise _child_error or RuntimeError("the stage was not built")
    outputs = stage.process([InMessage(*m) for m in batch])
    return [(o.topic, o.key, o.value, o.headers) for o in outputs]


def _exit_with_parent() -> None:
    """A thread that ends this process when the parent's end of the spawn pipe closes, i.e.
    when the parent exits for any reason (a worker blocked on the task queue would not
    notice otherwise: the queue's pipe stays open in this process)."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:  # pragma: no cover - always set for a spawned child
        return

    def watch() -> None:
        wait_for_handles([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
