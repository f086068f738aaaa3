"""Two metrics that explain a latency tail in an asyncio server: how late the event loop
runs a timer (everything on the loop waits that long), and how long the garbage
collector stops the process, by generation. The API serves both on ``/metrics``."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

LOOP_LAG = Histogram(
    "hub_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 50 ms (while late, nothing on the loop runs)",
    buckets=_BUCKETS,
)
GC_PAUSE = Histogram(
    "hub_gc_pause_seconds",
    "Pauses of this process for the garbage collector, by generation",
    ["generation"],
    buckets=_BUCKETS,
)

_gc_started: list[float] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(
            time.perf_counter() - _gc_started.pop()
        )


def watch_gc() -> None:
    """Time every collection of this process (once per process, however often called)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


async def watch_event_loop(interval: float = 0.05) -> None:
    """Sample the running loop's lag until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        LOOP_LAG.observe(max(0.0, loop.time() - due))
