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
import pickle
import signal
import socket
import struct
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_handles
from multiprocessing.process import BaseProcess
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
    """One child process that runs a stage; ``process`` is awaitable from the event loop.

    Parent and child talk over one socket pair: a batch goes out as one length-prefixed
    pickle, its outputs come back the same way, and the child answers batches in the order
    they came. The parent's end is non-blocking and driven by the event loop itself (a
    reader callback, and a writer callback only while a batch does not fit the socket's
    buffer), so handing a batch over costs no thread. ``ProcessPoolExecutor``, used before,
    ran a feeder and a result thread in the Faust process that took ~18 % of its samples
    (py-spy) and competed with the event loop for the GIL on every batch; against it, in
    interleaved runs of the bench's processor agent (99,722 events, 3 rounds each), the Faust
    process spends 186-191 µs of CPU per event instead of 205-220, and the agent runs at
    3,713-4,171 events/s instead of 2,696-3,513.
    """

    def __init__(self, recipe: StageRecipe) -> None:
        self.recipe = recipe
        self._child: BaseProcess | None = None
        self._sock: socket.socket | None = None
        self._starting = threading.Lock()  # start() also runs on an executor thread
        self._loop: asyncio.AbstractEventLoop | None = None  # whose reader is registered
        self._writing = False  # a writer callback is registered (the outbox is not empty)
        self._outbox = bytearray()
        self._inbox = bytearray()
        # one future per batch sent and not yet answered, oldest first
        self._waiting: deque[asyncio.Future[list[RawOut]]] = deque()

    @property
    def output_topics(self) -> tuple[str, ...]:
        return self.recipe.output_topics

    @property
    def running(self) -> bool:
        return self._sock is not None

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        return self._child.pid if self._child is not None and self._sock is not None else None

    def start(self) -> None:
        """Start the child and wait until its stage is built and warmed up. A bad policy or
        an unreachable registry raises here, in the parent, as the inline stage would."""
        with self._starting:
            if self._sock is not None:
                return
            ours, theirs = socket.socketpair()
            child = multiprocessing.get_context("spawn").Process(
                target=_child_main, args=(self.recipe, theirs), name="hub-stage", daemon=True
            )
            try:
                child.start()
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()  # the child's copy is its own: its exit is our end-of-file
            try:
                kind, value = _receive(ours)
            except (EOFError, OSError):
                ours.close()
                _reap(child, timeout=5)
                raise ConfigError(
                    "the processor stage's worker process died while starting"
                ) from None
            if kind == "error":
                ours.close()
                _reap(child, timeout=5)
                raise value
            ours.setblocking(False)
            self._child, self._sock = child, ours
            log.info("processor stage running in worker process %s", child.pid)

    async def process(self, batch: Sequence[RawIn]) -> list[RawOut]:
        """The stage's outputs for ``batch``, computed in the child."""
        loop = asyncio.get_running_loop()
        if self._sock is None:
            await loop.run_in_executor(None, self.start)
        if loop is not self._loop:
            self._attach(loop)
        future: asyncio.Future[list[RawOut]] = loop.create_future()
        self._waiting.append(future)
        payload = pickle.dumps(list(batch), protocol=pickle.HIGHEST_PROTOCOL)
        self._outbox += _FRAME.pack(len(payload))
        self._outbox += payload
        self._flush()
        return await future

    def close(self) -> None:
        """Stop the child after the batch it is on (batches sent after it are dropped: their
        source offsets were never acknowledged, so they are consumed again)."""
        sock, child = self._sock, self._child
        self._detach()
        self._sock = self._child = None
        self._outbox.clear()
        self._inbox.clear()
        waiting, self._waiting = self._waiting, deque()
        for future in waiting:
            if not future.done() and not future.get_loop().is_closed():
                future.cancel()
        if sock is not None:
            sock.close()  # the child finishes its batch, finds the socket closed and exits
        if child is not None:
            _reap(child, timeout=_CLOSE_TIMEOUT)

    # -- the event loop's side ------------------------------------------------------------
    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._detach()
        assert self._sock is not None
        loop.add_reader(self._sock.fileno(), self._on_readable)
        self._loop = loop
        if self._outbox:
            self._flush()

    def _detach(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed() and self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            if self._writing:
                loop.remove_writer(self._sock.fileno())
        self._writing = False

    def _flush(self) -> None:
        """Send what the socket takes now; the writer callback sends the rest."""
        sock, loop, outbox = self._sock, self._loop, self._outbox
        if sock is None or loop is None:
            return
        try:
            while outbox:
                del outbox[: sock.send(outbox)]  # a bytearray drops its head in O(1)
        except BlockingIOError:
            if not self._writing:
                loop.add_writer(sock.fileno(), self._flush)
                self._writing = True
            return
        except OSError:
            self._lost()
            return
        if self._writing:
            loop.remove_writer(sock.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            chunk = sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._lost()
            return
        inbox = self._inbox
        inbox += chunk
        while len(inbox) >= _FRAME.size:
            (size,) = _FRAME.unpack_from(inbox)
            end = _FRAME.size + size
            if len(inbox) < end:
                break
            try:
                with memoryview(inbox) as view:
                    kind, value = pickle.loads(view[_FRAME.size : end])  # noqa: S301 - our child
            except Exception as exc:  # noqa: BLE001 - the frame is whole: fail its batch only
                kind = "error"
                value = RuntimeError(
                    f"the processor stage's answer could not be read ({type(exc).__name__})"
                )
            del inbox[:end]
            future = self._waiting.popleft()
            if future.done() or future.get_loop().is_closed():
                continue  # its caller went away; the answer still had to be read
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(value)

    def _lost(self) -> None:
        """The child went away (it crashed or was killed): every batch in its hands fails
        as retriable; the next ``process`` starts a new child."""
        waiting, self._waiting = self._waiting, deque()
        self.close()
        for future in waiting:
            if not future.done() and not future.get_loop().is_closed():
                future.set_exception(
                    RetriableError(
                        "the processor stage's worker process died; a new one starts with "
                        "the next batch",
                        retry_after=0,
                    )
                )


# Each message: its length, then a pickle. Pickle is safe here for the reason it is in
# multiprocessing: the socket pair is made by this process for its own child, and no other
# process holds either end.
_FRAME = struct.Struct("!Q")
_READ_SIZE = 1 << 20
_CLOSE_TIMEOUT = 60.0  # a batch takes well under a second; a child stuck longer is killed


def _send(sock: socket.socket, message: tuple[str, Any]) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_FRAME.pack(len(payload)) + payload)


def _receive(sock: socket.socket) -> Any:
    """One message from a blocking socket; EOFError when the other end closed."""
    (size,) = _FRAME.unpack(_read_exactly(sock, _FRAME.size))
    return pickle.loads(_read_exactly(sock, size))  # noqa: S301 - parent or own child


def _read_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    with memoryview(buffer) as view:
        got = 0
        while got < size:
            n = sock.recv_into(view[got:])
            if not n:
                raise EOFError("the other end closed the stage socket")
            got += n
    return buffer


def _reap(child: BaseProcess, timeout: float) -> None:
    child.join(timeout)
    if child.is_alive():
        log.warning("processor stage worker %s did not stop in %.0f s; killed", child.pid, timeout)
        child.kill()
        child.join()


def _portable(exc: BaseException) -> BaseException:
    """`exc` as it can cross to the parent: with where it was raised in the child as a note
    (code locations, never values), or a RuntimeError naming its type when it does not
    pickle."""
    where = "".join(traceback.format_tb(exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
    except Exception:  # noqa: BLE001 - any failure to round-trip means: send a stand-in
        exc = RuntimeError(f"{type(exc).__name__} in the processor stage (not picklable)")
    if where:
        exc.add_note("raised in the processor stage's worker process:\n" + where)
    return exc


# -- the child side -------------------------------------------------------------------------


def _child_main(recipe: StageRecipe, sock: socket.socket) -> None:
    """The worker process: build the stage, say so, then answer batches until the parent
    closes its end."""
    # The parent owns this process's lifetime: a Ctrl-C or a SIGTERM to the whole process
    # group must not kill a batch halfway; the parent drains and then stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # `kill -USR1` prints every thread's stack (code locations, never values) to stderr,
    # as the Faust worker that owns this process does with its tasks.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    _exit_with_parent()
    try:
        stage = recipe.factory(**recipe.kwargs)
        stage.warm_up()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send(sock, ("error", _portable(exc)))
        return
    _send(sock, ("ready", None))
    # From here on this process only runs batches (hub.gc_policy); it lives as long as
    # the stage, so the settings are never restored.
    use_streaming_gc(freeze=True)
    while True:
        try:
            batch: list[RawIn] = _receive(sock)
        except (EOFError, OSError):
            return  # the parent closed its end: done
        try:
            outputs = stage.process([InMessage(*m) for m in batch])
            reply: tuple[str, Any] = ("ok", [(o.topic, o.key, o.value, o.headers) for o in outputs])
        except Exception as exc:  # noqa: BLE001 - the batch's caller gets it, as raised
            reply = ("error", _portable(exc))
        try:
            _send(sock, reply)
        except OSError:
            return


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
