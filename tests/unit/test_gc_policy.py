"""hub.gc_policy: the streaming garbage-collector settings, applied and restored."""

from __future__ import annotations

import gc

from hub.gc_policy import YOUNG_THRESHOLD, streaming_gc


def test_streaming_gc_raises_the_young_threshold_and_restores_it() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with streaming_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() == frozen  # nothing frozen without freeze=True
    assert gc.get_threshold() == before


def test_streaming_gc_with_freeze_keeps_what_exists_out_of_collections() -> None:
    before = gc.get_threshold()
    kept = [[i] for i in range(100)]  # container objects alive before the block
    frozen = gc.get_freeze_count()  # an in-process API of an earlier test may have frozen
    with streaming_gc(freeze=True):
        assert gc.get_freeze_count() >= frozen + len(kept)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
