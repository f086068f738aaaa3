"""Garbage-collector settings for processes that stream batches (the projection worker,
the processor's stage process).

A batch's objects live for a batch or a few. With CPython's default young-generation
threshold (700 allocations) the collector runs many times per batch and promotes what is in
flight to the older generations, whose collections then walk everything the process holds:
measured at ~12 µs of the projection reader's ~40 µs per event (#3), and at ~7 % of the DLP
engine's batch loop (perf; 3 % of its instructions, callgrind). With a young threshold of
50,000 a steady stream of batches rarely triggers a collection; reference counting still
frees everything that is not a cycle at once, and cyclic garbage is bounded by the
threshold. Freezing what start-up built (``gc.freeze``) keeps it out of every later
collection. Process-wide, so the settings belong to whoever owns the process: a worker's
entry point, or a benchmark that measures what the worker runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000  # CPython's default is 700


def use_streaming_gc(*, freeze: bool = False) -> tuple[int, int, int]:
    """Apply the streaming settings; returns the thresholds they replace. `freeze`: first
    move every object alive now to the permanent generation."""
    thresholds = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD)
    return thresholds


@contextmanager
def streaming_gc(*, freeze: bool = False) -> Iterator[None]:
    """The streaming settings for the block, restored on exit; with `freeze`, every frozen
    object is unfrozen on exit (gc.unfreeze is process-wide, as the thresholds are)."""
    thresholds = use_streaming_gc(freeze=freeze)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()
