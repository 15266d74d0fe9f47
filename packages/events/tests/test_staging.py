"""The staging engine behind StreamContext, piece by piece: retry delays, numbering, batches,
back-pressure, retries while the backend is away, patience when finishing, queue mode."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from dockrion_events import (
    BackendConnectionError,
    BaseEvent,
    EventRecord,
    Run,
    RunCancelledError,
    RunStatus,
    StreamClosedError,
    StreamContext,
)
from dockrion_events._batch_stage import LIVE_EVENTS, Backoff, BatchStage
from dockrion_events._builders import token
from dockrion_events._staging import DirectStage
from dockrion_events.errors import RunFinishedError
from dockrion_events.sinks import LangGraphSink, QueueSink, StreamingSink


class FakeLog:
    """A run-log sink that records batches and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.finished: list[BaseEvent] = []
        self.down = 0  # this many calls fail with BackendConnectionError
        self.ended: str | None = None  # the run already ended with this status

    def _maybe_fail(self) -> None:
        if self.down:
            self.down -= 1
            raise BackendConnectionError("fake backend is down", "fake")

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        if self.ended is not None:
            raise RunFinishedError(run_id, self.ended)
        self._maybe_fail()
        self.batches.append([r.sequence for r in records])

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        build: Callable[[int], BaseEvent],
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]:
        self._maybe_fail()
        sequence = sum(len(batch) for batch in self.batches)
        event = build(sequence)
        self.finished.append(event)
        return Run(run_id=run_id, status=status), EventRecord.from_event(event)


def stage_on_loop(log: FakeLog, **options: Any) -> BatchStage:
    stage = BatchStage(
        "r", log, max_pending=options.get("max_pending", 10_000), finish_patience=5.0
    )
    stage.bind_loop(asyncio.get_running_loop())
    return stage


def test_backoff_doubles_from_50ms_to_2s_and_resets() -> None:
    backoff = Backoff()
    failing = [backoff.failing]
    delays = [backoff.next() for _ in range(8)]
    failing.append(backoff.failing)
    backoff.reset()
    failing.append(backoff.failing)
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert failing == [False, True, False]
    assert backoff.delay == 0.0


def test_events_staged_before_the_loop_runs_go_out_in_one_batch() -> None:
    async def scenario() -> list[list[int]]:
        log = FakeLog()
        stage = stage_on_loop(log)
        for i in range(5):
            stage.stage("token", token("r", str(i), None))
        assert [r.sequence for r in stage.pending] == [0, 1, 2, 3, 4]
        # the one scheduled wake-up flushes them all, however late the loop gets to it
        for _ in range(10_000):
            if sum(map(len, log.batches)) == 5:
                break
            await asyncio.sleep(0.001)
        return log.batches

    assert asyncio.run(scenario()) == [[0, 1, 2, 3, 4]]


def test_an_async_producer_that_never_yields_is_flushed_in_small_batches() -> None:
    async def scenario() -> list[list[int]]:
        log = FakeLog()
        stage = stage_on_loop(log)
        for i in range(10 * LIVE_EVENTS):
            await stage.emit("token", token("r", str(i), None))
        await stage.flush()
        return log.batches

    batches = asyncio.run(scenario())
    assert [s for batch in batches for s in batch] == list(range(10 * LIVE_EVENTS))
    assert len(batches) >= 10
    assert max(len(batch) for batch in batches) <= LIVE_EVENTS


def test_an_async_producer_that_never_yields_lets_the_readers_run() -> None:
    """The producer's awaits never suspend on their own; a reader still sees its events
    while it runs (the producer stops as soon as the reader has seen one)."""

    class SignallingLog(FakeLog):
        def __init__(self) -> None:
            super().__init__()
            self.appended = asyncio.Event()

        async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
            await super().append(run_id, records)
            self.appended.set()

    async def scenario() -> tuple[int, list[list[int]]]:
        log = SignallingLog()
        stage = stage_on_loop(log)
        seen = asyncio.Event()

        async def reader() -> None:
            await log.appended.wait()
            seen.set()

        task = asyncio.create_task(reader())
        emitted = 0
        while not seen.is_set() and emitted < 100_000:
            await stage.emit("token", token("r", str(emitted), None))
            emitted += 1
        await task
        return emitted, log.batches

    emitted, batches = asyncio.run(scenario())
    assert emitted < 100_000
    assert batches[0][0] == 0


def test_a_worker_thread_far_ahead_of_the_loop_waits_for_room() -> None:
    async def scenario() -> tuple[list[list[int]], int]:
        log = FakeLog()
        stage = stage_on_loop(log, max_pending=3)
        most = 0

        def producer() -> None:
            nonlocal most
            for i in range(10):
                stage.stage("token", token("r", str(i), None))
                most = max(most, len(stage.pending))

        await asyncio.to_thread(producer)
        await stage.flush()
        return log.batches, most

    batches, most = asyncio.run(scenario())
    assert [s for batch in batches for s in batch] == list(range(10))
    assert most <= 3


def test_a_batch_that_meets_an_outage_is_kept_and_retried_in_order() -> None:
    failing: list[bool] = []

    async def scenario() -> tuple[list[list[int]], BaseEvent]:
        log = FakeLog()
        log.down = 2
        stage = stage_on_loop(log)
        for i in range(3):
            stage.stage("token", token("r", str(i), None))
        await stage.flush()  # fails: the events stay pending, a retry is scheduled
        assert [r.sequence for r in stage.pending] == [0, 1, 2]
        failing.append(stage.backoff.failing)
        stage.stage("token", token("r", "3", None))
        done = await stage.finish(
            RunStatus.COMPLETED,
            "complete",
            lambda seq: BaseEvent(type="complete", run_id="r", sequence=seq),
        )
        failing.append(stage.backoff.failing)
        return log.batches, done

    batches, done = asyncio.run(scenario())
    assert [s for batch in batches for s in batch] == [0, 1, 2, 3]
    assert done.sequence == 4
    assert failing == [True, False]  # failing during the outage, reset by the success


def test_finish_gives_up_after_its_patience() -> None:
    async def scenario() -> None:
        log = FakeLog()
        log.down = 1_000_000
        stage = BatchStage("r", log, max_pending=100, finish_patience=0.2)
        stage.bind_loop(asyncio.get_running_loop())
        stage.stage("token", token("r", "x", None))
        with pytest.raises(BackendConnectionError, match="1 events could not be stored"):
            await stage.finish(
                RunStatus.COMPLETED,
                "complete",
                lambda seq: BaseEvent(type="complete", run_id="r", sequence=seq),
            )

    asyncio.run(scenario())


def test_a_run_ended_elsewhere_cancels_the_producer() -> None:
    async def scenario() -> None:
        log = FakeLog()
        log.ended = "CANCELLED"
        stage = stage_on_loop(log)
        stage.stage("token", token("r", "x", None))
        await stage.flush()
        assert stage.cancel_reason == "run already CANCELLED"
        with pytest.raises(RunCancelledError):
            stage.stage("token", token("r", "y", None))

    asyncio.run(scenario())


def test_a_sink_failure_is_raised_by_the_next_emit_once() -> None:
    class Broken(FakeLog):
        async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
            raise ValueError("broken sink")

    async def scenario() -> None:
        stage = stage_on_loop(Broken())
        stage.stage("token", token("r", "x", None))
        await stage.flush()
        with pytest.raises(ValueError, match="broken sink"):
            stage.stage("token", token("r", "y", None))
        stage.stage("token", token("r", "z", None))  # reported once

    asyncio.run(scenario())


def test_staging_from_a_thread_without_a_bound_loop_fails_clearly() -> None:
    stage = BatchStage("r", FakeLog(), max_pending=10, finish_patience=1.0)
    with pytest.raises(RuntimeError, match="not bound to an event loop"):
        stage.stage("token", token("r", "x", None))


def test_cancel_runs_callbacks_once_and_late_callbacks_at_once() -> None:
    stage = DirectStage("r")
    calls: list[str] = []
    stage.on_cancel(lambda: calls.append("early"))
    stage.cancel("stop")
    stage.cancel("again")
    stage.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]
    assert (stage.cancel_reason, stage.closed_by) == ("stop", "cancelled")


def test_queue_mode_offers_each_event_to_its_streaming_sink_first() -> None:
    class Picky:
        name = "picky"

        def __init__(self) -> None:
            self.taken: list[int] = []

        def emit(self, event: BaseEvent) -> bool:
            if event.sequence == 1:
                raise OSError("a sink that raises counts as unavailable")
            if event.sequence % 2:
                return False
            self.taken.append(event.sequence)
            return True

        def is_available(self) -> bool:
            return True

    picky = Picky()
    assert isinstance(picky, StreamingSink)
    context = StreamContext("r", queue_mode=True, streaming_sink=picky)
    for i in range(5):
        context.sync_emit_token(str(i))
    asyncio.run(context.emit_complete({"ok": True}))
    assert picky.taken == [0, 2, 4]
    assert context.has_queued_events() and context.queue_size() == 3
    kept = context.drain_queued_events()
    assert [(e.sequence, e.type) for e in kept] == [(1, "token"), (3, "token"), (5, "complete")]
    with pytest.raises(StreamClosedError):
        context.sync_emit_token("late")


def test_queue_sink_and_langgraph_sink_outside_a_graph() -> None:
    queue = QueueSink()
    event = BaseEvent(type="token", run_id="r", sequence=0)
    assert queue.emit(event) and len(queue) == 1 and queue.is_available()
    assert queue.drain() == [event] and len(queue) == 0
    graph = LangGraphSink()
    assert isinstance(graph, StreamingSink)
    assert graph.emit(event) is False  # not inside a graph run: the caller keeps the event
    assert graph.is_available() is False


def test_worker_threads_and_the_loop_share_one_numbering() -> None:
    async def scenario() -> list[int]:
        log = FakeLog()
        stage = stage_on_loop(log)
        barrier = threading.Barrier(3)

        def worker() -> None:
            barrier.wait()
            for i in range(200):
                stage.stage("token", token("r", str(i), None))

        await asyncio.gather(*(asyncio.to_thread(worker) for _ in range(3)))
        await stage.flush()
        return [s for batch in log.batches for s in batch]

    assert asyncio.run(scenario()) == list(range(600))
