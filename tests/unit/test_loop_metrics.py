"""hub.loop_metrics: a blocked event loop and a garbage collection show in the histograms
the API serves on /metrics."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import REGISTRY

from hub.loop_metrics import watch_event_loop, watch_gc


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_blocked_loop_is_seen_as_lag() -> None:
    slow = {"le": "0.05"}
    over_before = sample("hub_event_loop_lag_seconds_count") - sample(
        "hub_event_loop_lag_seconds_bucket", slow
    )

    async def run() -> None:
        watcher = asyncio.create_task(watch_event_loop(0.01))
        await asyncio.sleep(0.03)
        time.sleep(0.12)  # the loop is blocked: the watcher's timer fires ~0.12 s late
        await asyncio.sleep(0.03)
        watcher.cancel()

    asyncio.run(run())
    over_after = sample("hub_event_loop_lag_seconds_count") - sample(
        "hub_event_loop_lag_seconds_bucket", slow
    )
    assert over_after - over_before == 1


def test_collections_are_timed_by_generation_once_however_often_watched() -> None:
    watch_gc()
    watch_gc()
    assert sum(1 for cb in gc.callbacks if getattr(cb, "__module__", "") == "hub.loop_metrics") == 1
    before = sample("hub_gc_pause_seconds_count", {"generation": "2"})
    gc.collect()
    assert sample("hub_gc_pause_seconds_count", {"generation": "2"}) == before + 1
