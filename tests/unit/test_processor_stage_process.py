"""The processor stage in a worker process (hub.processors.stage_runners.StageProcess): a
real spawned child running a small stage defined here. Outputs in order and equal to the
inline stage's; a bad stage fails at start in the parent; a dead child is a retriable error
and the next batch gets a new one; the child ignores SIGINT/SIGTERM (the parent drains and
stops it) and never outlives its parent, even one killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from hub.errors import ConfigError, RetriableError
from hub.processors.stage_runners import InlineStage, RawIn, RawOut, StageProcess, StageRecipe
from hub.processors.validation import InMessage, OutMessage
from hub.settings import REPO_ROOT


class Unpicklable(Exception):
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("no")


def _refuse_to_load() -> None:
    raise ValueError("cannot be rebuilt here")


class Unreadable:
    """Pickles in the child; unpickling it (in the parent) raises."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_refuse_to_load, ())


class ReversingStage:
    """Each input to one output: the value reversed, tagged with the child's pid; a value
    ``b"die"`` ends the process (a crash in the middle of a batch)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.topic,)

    def warm_up(self) -> None:
        return None

    def process(self, batch: list[InMessage]) -> list[OutMessage]:
        out: list[OutMessage] = []
        for m in batch:
            if m.value == b"die":
                os._exit(3)
            if m.value == b"raise":
                raise ValueError("a rule file went missing")
            if m.value == b"raise-unpicklable":
                raise Unpicklable()
            if m.value == b"sleep":
                time.sleep(0.5)
            if m.value == b"unreadable":
                out.append(OutMessage(self.topic, b"", Unreadable(), []))  # type: ignore[arg-type]
                continue
            headers = [*m.headers, ("offset", str(m.offset).encode())]
            out.append(OutMessage(self.topic, m.key or b"", (m.value or b"")[::-1], headers))
        return out


def reversing_stage(topic: str) -> ReversingStage:
    return ReversingStage(topic)


def broken_stage(topic: str) -> ReversingStage:
    raise ConfigError(f"policies/validation.yaml: no department for {topic}")


def batch(n: int, start: int = 0) -> list[RawIn]:
    return [
        ("raw", i % 4, i, f"k{i % 7}".encode(), f"value-{i}".encode(), [("ce_id", b"x")])
        for i in range(start, start + n)
    ]


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def stage_process() -> Iterator[StageProcess]:
    process = StageProcess(StageRecipe(reversing_stage, {"topic": "out"}, ("out",)))
    process.start()
    try:
        yield process
    finally:
        process.close()


def child_pids(process: StageProcess) -> list[int]:
    return [] if process.pid is None else [process.pid]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_outputs_come_back_in_order_and_equal_the_inline_stage(
    stage_process: StageProcess,
) -> None:
    inline = InlineStage(ReversingStage("out"))
    batches = [batch(500, start) for start in range(0, 2000, 500)]

    async def both() -> tuple[list[list[RawOut]], list[list[RawOut]]]:
        # all four in flight at once, as the agent pipelines them
        remote = await asyncio.gather(*(stage_process.process(b) for b in batches))
        local = [await inline.process(b) for b in batches]
        return remote, local

    remote, local = run(both())
    assert remote == local
    flat = [o for b in remote for o in b]
    assert [int(dict(o[3])["offset"]) for o in flat] == list(range(2000))
    assert flat[1] == ("out", b"k1", b"1-eulav", [("ce_id", b"x"), ("offset", b"1")])
    assert stage_process.output_topics == ("out",)


def test_batches_far_larger_than_the_socket_buffer_cross_whole_and_in_order(
    stage_process: StageProcess,
) -> None:
    """Three batches of ~4 MB each in flight at once: the parent sends what the socket takes
    and the rest from the loop's writer callback, and reads answers that arrive in pieces."""
    big = [
        ("raw", 0, i, b"k", bytes([65 + i % 26]) * 4096 + str(i).encode(), [("ce_id", b"x")])
        for i in range(3000)
    ]
    batches = [big[0:1000], big[1000:2000], big[2000:3000]]

    async def all_at_once() -> list[list[RawOut]]:
        return await asyncio.gather(*(stage_process.process(b) for b in batches))

    answers = run(all_at_once())
    values = [o[2] for b in answers for o in b]
    assert values == [m[4][::-1] for m in big]


def test_an_error_in_the_stage_reaches_its_caller_and_the_child_goes_on(
    stage_process: StageProcess,
) -> None:
    [pid] = child_pids(stage_process)
    with pytest.raises(ValueError, match="a rule file went missing") as raised:
        run(stage_process.process([*batch(2), ("raw", 0, 2, b"k", b"raise", [])]))
    notes = "".join(getattr(raised.value, "__notes__", []))
    assert "raised in the processor stage's worker process" in notes
    assert "in process" in notes  # where: the stage's frame, not a value
    with pytest.raises(RuntimeError, match="Unpicklable in the processor stage"):
        run(stage_process.process([("raw", 0, 0, b"k", b"raise-unpicklable", [])]))
    assert child_pids(stage_process) == [pid]
    assert [o[2] for o in run(stage_process.process(batch(1)))] == [b"0-eulav"]


def test_an_answer_the_parent_cannot_read_fails_its_batch_only(
    stage_process: StageProcess,
) -> None:
    with pytest.raises(RuntimeError, match="answer could not be read"):
        run(stage_process.process([("raw", 0, 0, b"k", b"unreadable", [])]))
    assert stage_process.running
    assert [o[2] for o in run(stage_process.process(batch(1)))] == [b"0-eulav"]


def test_a_cancelled_caller_does_not_shift_the_answers_of_the_next_batches(
    stage_process: StageProcess,
) -> None:
    """The child answers every batch it was sent; the answer of one whose caller gave up is
    read and dropped, so each later caller still gets its own batch's outputs."""

    async def scenario() -> tuple[list[RawOut], list[RawOut]]:
        slow = asyncio.ensure_future(stage_process.process([("raw", 0, 0, b"k", b"sleep", [])]))
        await asyncio.sleep(0.1)  # sent, and the child is on it
        slow.cancel()
        first = await stage_process.process(batch(1, start=10))
        second = await stage_process.process(batch(1, start=20))
        return first, second

    first, second = run(scenario())
    assert [o[2] for o in first] == [b"01-eulav"]
    assert [o[2] for o in second] == [b"02-eulav"]


def test_a_stage_that_cannot_be_built_fails_at_start_in_the_parent() -> None:
    process = StageProcess(StageRecipe(broken_stage, {"topic": "out"}, ("out",)))
    with pytest.raises(ConfigError, match="no department for out"):
        process.start()
    assert not process.running


def test_a_dead_child_is_retriable_and_the_next_batch_gets_a_new_one(
    stage_process: StageProcess,
) -> None:
    first = child_pids(stage_process)
    poisoned: list[RawIn] = [*batch(3), ("raw", 0, 3, b"k", b"die", [])]
    with pytest.raises(RetriableError, match="worker process died"):
        run(stage_process.process(poisoned))
    assert not stage_process.running
    assert all(wait_gone(pid) for pid in first)
    out = run(stage_process.process(batch(2)))
    assert [o[2] for o in out] == [b"0-eulav", b"1-eulav"]
    assert child_pids(stage_process) != first


def test_the_child_ignores_sigterm_and_sigint_and_close_stops_it(
    stage_process: StageProcess,
) -> None:
    [pid] = child_pids(stage_process)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.3)
    assert alive(pid)
    assert len(run(stage_process.process(batch(10)))) == 10
    stage_process.close()
    assert wait_gone(pid, timeout=5)


PARENT = textwrap.dedent(
    """
    import sys, time
    from hub.processors.stage_runners import StageProcess, StageRecipe
    from tests.unit.test_processor_stage_process import child_pids, reversing_stage
    process = StageProcess(StageRecipe(reversing_stage, {"topic": "out"}, ("out",)))
    process.start()
    print(*child_pids(process), flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_child_never_outlives_its_parent(how: signal.Signals) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert parent.stdout is not None
        [pid] = [int(p) for p in parent.stdout.readline().split()]
        assert alive(pid)
        parent.send_signal(how)
        parent.wait(10)
        assert wait_gone(pid), f"worker process {pid} outlived its parent ({how.name})"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_the_inline_stage_runs_the_stage_object_on_the_caller() -> None:
    inline = InlineStage(ReversingStage("out"))
    inline.start()
    out = run(inline.process(batch(2)))
    assert [o[2] for o in out] == [b"0-eulav", b"1-eulav"]
    assert inline.output_topics == ("out",)
    inline.close()


class GcReportingStage(ReversingStage):
    """Answers every message with its own process's GC settings: young threshold, frozen."""

    def process(self, batch: list[InMessage]) -> list[OutMessage]:
        import gc

        state = f"{gc.get_threshold()[0]},{gc.get_freeze_count()}".encode()
        return [OutMessage(self.topic, b"", state, []) for _ in batch]


def gc_reporting_stage(topic: str) -> GcReportingStage:
    return GcReportingStage(topic)


def test_the_child_runs_batches_with_the_streaming_gc_settings() -> None:
    """Built and warmed up, the child freezes what start-up made and collects its young
    generation once per hub.gc_policy.YOUNG_THRESHOLD allocations."""
    from hub.gc_policy import YOUNG_THRESHOLD

    process = StageProcess(StageRecipe(gc_reporting_stage, {"topic": "out"}, ("out",)))
    try:
        [out] = run(process.process(batch(1)))
    finally:
        process.close()
    threshold, frozen = map(int, out[2].split(b","))
    assert threshold == YOUNG_THRESHOLD
    assert frozen > 1000  # the stage, its modules and everything start-up imported
