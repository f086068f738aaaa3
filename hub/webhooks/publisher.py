"""An asyncio-friendly Kafka publisher: ``await publish(messages)`` returns once the broker
acknowledged every message (acks=all), or raises ``RetriableError``.

One confluent-kafka ``Producer`` per process and one thread that serves its delivery
reports (``poll``); each ``publish`` call produces its messages with one delivery
callback and waits on an asyncio future. The poll thread resolves the futures of every
batch acknowledged in one ``poll`` with a single ``call_soon_threadsafe``. The event loop
never blocks on Kafka: ``produce`` only queues.

A message the broker does not acknowledge within ``delivery_timeout`` (librdkafka's
``message.timeout.ms``: it stops retrying it then) fails the whole call; so does a full
local queue. A webhook request answered 2xx has its events on the log; one answered
503 may have some of them there too — the sender's retry publishes them again under the
same deterministic event ids, and idempotent consumers drop the copies.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hub.errors import RetriableError
from hub.events import Headers

log = logging.getLogger(__name__)

__all__ = ["KafkaPublisher", "OutMessage"]


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


class _Batch:
    """The outstanding acknowledgements of one ``publish`` call."""

    __slots__ = ("errors", "future", "loop", "pending", "ready")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int, ready: list[_Batch]) -> None:
        self.loop = loop
        self.future: asyncio.Future[list[str]] = loop.create_future()
        self.pending = count
        self.errors: list[str] = []
        self.ready = ready

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        # In the poll thread (librdkafka serves the reports from there only): only this
        # batch's callbacks touch its counters, so no lock is needed.
        if err is not None:
            self.errors.append(err.name())
        self.pending -= 1
        if self.pending == 0:
            self.ready.append(self)  # settled after this poll() returns, with the others


def _settle(batches: list[_Batch]) -> None:
    """On the event loop: resolve the futures of acknowledged batches."""
    for batch in batches:
        if not batch.future.done():  # the waiter may have timed out and gone
            batch.future.set_result(batch.errors)


class KafkaPublisher:
    """Publishes for an asyncio app; ``start`` before use, ``close`` at shutdown."""

    def __init__(
        self,
        bootstrap: str,
        *,
        delivery_timeout: float = 4.0,
        linger_ms: float = 1.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.delivery_timeout = delivery_timeout
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.timeout.ms": int(delivery_timeout * 1000),
            "socket.keepalive.enable": True,
            "error_cb": self._on_error,
        }
        conf.update(config or {})
        self._producer: Producer | None = Producer(conf)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self._ready: list[_Batch] = []  # acknowledged batches, filled by the poll thread

    def start(self) -> KafkaPublisher:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="webhook-publisher", daemon=True
            )
            self._thread.start()
        return self

    def _serve(self) -> None:
        """Serve delivery reports; wake each event loop once per ``poll`` for every batch
        acknowledged in it (one wake-up per request would cost a syscall each)."""
        producer, stop, ready = self._producer, self._stop, self._ready
        while producer is not None and not stop.is_set():
            producer.poll(0.05)
            if ready:
                done = ready[:]
                del ready[:]
                by_loop: dict[asyncio.AbstractEventLoop, list[_Batch]] = {}
                for batch in done:
                    by_loop.setdefault(batch.loop, []).append(batch)
                for loop, batches in by_loop.items():
                    try:
                        loop.call_soon_threadsafe(_settle, batches)
                    except RuntimeError:  # that loop is closed: nobody waits any more
                        continue

    def _on_error(self, err: KafkaError) -> None:
        # librdkafka's client-level errors (broker down, ...): logged once per change.
        name = err.name()
        if name != self._last_error:
            self._last_error = name
            log.warning("webhook publisher: %s", name)

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        """Produce ``messages``; return when every one is acknowledged."""
        if not messages:
            return
        producer = self._producer
        if producer is None or self._thread is None or self._stop.is_set():
            raise RetriableError("webhook publisher is not started")
        batch = _Batch(asyncio.get_running_loop(), len(messages), self._ready)
        produce = producer.produce
        try:
            for m in messages:
                produce(
                    m.topic,
                    value=m.value,
                    key=m.key,
                    headers=m.headers,  # type: ignore[arg-type]  # a list of pairs is accepted
                    on_delivery=batch.on_delivery,
                )
        except BufferError:
            raise RetriableError("the publisher's local queue is full", retry_after=1.0) from None
        except KafkaException as exc:
            name = exc.args[0].name() if exc.args else "error"
            raise RetriableError(f"the broker refused the event ({name})") from None
        try:
            errors = await asyncio.wait_for(batch.future, self.delivery_timeout + 1.0)
        except TimeoutError:
            raise RetriableError(
                "the broker did not acknowledge in time", retry_after=self.delivery_timeout
            ) from None
        if errors:
            raise RetriableError(
                f"the broker did not acknowledge ({', '.join(sorted(set(errors)))})",
                retry_after=self.delivery_timeout,
            )
        self._last_error = None

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._producer is not None:
            self._producer.flush(timeout)
            self._producer = None  # librdkafka's threads end with the handle, not at exit
