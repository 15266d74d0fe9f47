"""PrivateRunLog: the one-reader log of a Pattern A run, written by a real StreamContext from
async code and from a worker thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dockrion_events import (
    EventRecord,
    PrivateRunLog,
    RunCancelledError,
    RunFinishedError,
    StreamContext,
)


async def read_all(run_log: PrivateRunLog, heartbeat: float | None = None) -> list[list[int]]:
    return [[record.sequence for record in batch] async for batch in run_log.batches(heartbeat)]


def sequences(batches: list[list[int]]) -> list[int]:
    return [sequence for batch in batches for sequence in batch]


def test_every_event_reaches_the_reader_once_in_order_then_it_ends() -> None:
    async def main() -> list[list[int]]:
        run_log = PrivateRunLog("run-1")
        context = StreamContext(run_log.run_id, run_log)
        reader = asyncio.ensure_future(read_all(run_log))
        await context.emit_started()
        for index in range(300):
            await context.emit_token(f"t{index}")
        await context.emit_complete({"done": True})
        return await reader

    batches = asyncio.run(main())
    assert sequences(batches) == list(range(302))  # started, 300 tokens, complete
    assert len(batches) < 302  # ready events are taken together


def test_a_worker_thread_s_events_arrive_in_order() -> None:
    async def main() -> list[list[int]]:
        run_log = PrivateRunLog("run-2")
        context = StreamContext(run_log.run_id, run_log)
        reader = asyncio.ensure_future(read_all(run_log))

        def agent() -> None:
            for index in range(2_000):
                context.sync_emit_token(f"t{index}")

        await asyncio.get_running_loop().run_in_executor(None, agent)
        await context.emit_complete(None)
        return await reader

    assert sequences(asyncio.run(main())) == list(range(2_001))


def test_the_terminal_event_is_the_last_batch_s_last_record() -> None:
    async def main() -> list[EventRecord]:
        run_log = PrivateRunLog("run-3")
        context = StreamContext(run_log.run_id, run_log)
        await context.emit_token("a")
        await context.emit_error("boom", "AGENT_ERROR")
        return [record async for batch in run_log.batches() for record in batch]

    records = asyncio.run(main())
    assert [record.type for record in records] == ["token", "error"]
    assert records[-1].terminal


def test_an_idle_reader_gets_empty_batches_as_heartbeats() -> None:
    async def main() -> list[list[int]]:
        run_log = PrivateRunLog("run-4")
        context = StreamContext(run_log.run_id, run_log)
        batches: list[list[int]] = []
        async for batch in run_log.batches(heartbeat=0.01):
            batches.append([record.sequence for record in batch])
            if sum(1 for seen in batches if not seen) == 2 and not sequences(batches):
                await context.emit_complete(None)
        return batches

    batches = asyncio.run(main())
    assert batches[:2] == [[], []]
    assert sequences(batches) == [0]


def test_a_producer_far_ahead_of_its_reader_waits_and_nothing_is_dropped() -> None:
    async def main() -> tuple[int, list[int]]:
        run_log = PrivateRunLog("run-5", backlog=50)
        context = StreamContext(run_log.run_id, run_log)
        producer_done = asyncio.Event()

        async def agent() -> None:
            for index in range(500):
                await context.emit_token(f"t{index}")
            await context.emit_complete(None)
            producer_done.set()

        task = asyncio.ensure_future(agent())
        for _ in range(200):  # the reader has not started: the producer must stop
            await asyncio.sleep(0)
        most_held = run_log.pending
        assert not producer_done.is_set()
        read = await read_all(run_log)
        await task
        return most_held, sequences(read)

    most_held, read = asyncio.run(main())
    assert most_held <= 50 + 64  # the backlog, plus at most one batch staged beyond it
    assert read == list(range(501))


def test_a_sync_producer_waits_for_a_slow_reader() -> None:
    async def main() -> tuple[int, list[int]]:
        run_log = PrivateRunLog("run-6", backlog=20)
        context = StreamContext(run_log.run_id, run_log, max_pending=20)
        largest = 0

        def agent() -> None:
            for index in range(400):
                context.sync_emit_token(f"t{index}")

        work = asyncio.get_running_loop().run_in_executor(None, agent)
        read: list[int] = []
        async for batch in run_log.batches():
            largest = max(largest, len(batch))
            read += [record.sequence for record in batch]
            await asyncio.sleep(0.001)  # a slow client
            if work.done() and not run_log.pending and read[-1] == 399:
                await context.emit_complete(None)
        await work
        return largest, read

    largest, read = asyncio.run(main())
    assert read == list(range(401))
    assert largest <= 20 + 20  # never more than the backlog and one pending batch


def test_a_reader_that_leaves_stops_the_producer() -> None:
    async def main() -> BaseException | None:
        run_log = PrivateRunLog("run-7")
        context = StreamContext(run_log.run_id, run_log)
        batches = run_log.batches()
        await context.emit_token("first")
        assert [record.sequence for record in await anext(batches)] == [0]
        await batches.aclose()  # type: ignore[attr-defined]
        failure: BaseException | None = None
        started = time.monotonic()
        while time.monotonic() - started < 10:
            try:
                await context.emit_token("more")
            except RunCancelledError as exc:
                failure = exc
                break
            await asyncio.sleep(0.001)
        return failure

    assert isinstance(asyncio.run(main()), RunCancelledError)


def test_a_worker_thread_stops_when_the_reader_leaves() -> None:
    async def main() -> BaseException | None:
        run_log = PrivateRunLog("run-8")
        context = StreamContext(run_log.run_id, run_log)
        failure: list[BaseException] = []
        first = threading.Event()

        def agent() -> None:
            try:
                for _ in range(1_000_000):
                    context.sync_emit_token("x")
                    first.set()
            except RunCancelledError as exc:
                failure.append(exc)

        work = asyncio.get_running_loop().run_in_executor(None, agent)
        batches = run_log.batches()
        await anext(batches)
        await batches.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(work, 30)
        return failure[0] if failure else None

    assert isinstance(asyncio.run(main()), RunCancelledError)


def test_nothing_is_appended_after_the_end() -> None:
    async def main() -> None:
        run_log = PrivateRunLog("run-9")
        context = StreamContext(run_log.run_id, run_log)
        await context.emit_complete(None)
        with pytest.raises(RunFinishedError):
            run_log.append_now(run_log.run_id, [])
        assert [len(batch) async for batch in run_log.batches()] == [1]
        assert run_log.pending == 0

    asyncio.run(main())


def test_the_backlog_is_bounded_in_bytes_too() -> None:
    big = "x" * 2048

    async def main() -> tuple[int, list[int]]:
        run_log = PrivateRunLog("run-bytes", backlog=10_000, max_bytes=64 * 1024)
        context = StreamContext(run_log.run_id, run_log)
        producer_done = asyncio.Event()

        async def agent() -> None:
            for _ in range(500):
                await context.emit_token(big)
            await context.emit_complete(None)
            producer_done.set()

        task = asyncio.ensure_future(agent())
        for _ in range(200):  # the reader has not started: the producer must stop
            await asyncio.sleep(0)
        most_held = run_log.pending_bytes
        assert not producer_done.is_set()
        read = await read_all(run_log)
        await task
        return most_held, sequences(read)

    most_held, read = asyncio.run(main())
    assert 0 < most_held <= 64 * 1024
    assert read == list(range(501))


def test_a_sync_producer_stages_no_more_than_the_byte_bound() -> None:
    big = "y" * 4096

    async def main() -> tuple[int, int, list[int]]:
        run_log = PrivateRunLog("run-sync-bytes", max_bytes=64 * 1024)
        context = StreamContext(run_log.run_id, run_log, max_pending_bytes=64 * 1024)
        emitted = 0

        def agent() -> None:
            nonlocal emitted
            for _ in range(1000):
                context.sync_emit_token(big)
                emitted += 1

        work = asyncio.get_running_loop().run_in_executor(None, agent)
        seen = -1
        while seen != emitted:  # until the thread waits for room (no reader yet)
            seen = emitted
            await asyncio.sleep(0.2)
        held = run_log.pending_bytes + context._stage.pending_bytes  # type: ignore[attr-defined]
        blocked_at = emitted
        reader = asyncio.ensure_future(read_all(run_log))
        await work
        await context.emit_complete(None)
        return held, blocked_at, sequences(await reader)

    held, blocked_at, read = asyncio.run(main())
    assert blocked_at < 1000
    # the log's bound, what the stage holds, and the one batch on its way between them
    assert held <= 3 * 64 * 1024 + 2 * 8192
    assert read == list(range(1001))
