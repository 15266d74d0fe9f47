"""The memory backend's retention: finished runs expire, and the number of stored runs is
capped by forgetting the run that finished first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dockrion_events import BackendError, EventBus, InMemoryBackend, RunManager
from dockrion_events._waiting import wait_set


def test_the_cap_forgets_the_run_that_finished_first(run_async: Any) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend(max_runs=3)
        runs = RunManager(EventBus(backend))
        first = await runs.create_run("first")
        second = await runs.create_run("second")
        running = await runs.create_run("running")
        # finished in the order second, first: second is the oldest finished run
        await runs.cancel_run(second.run_id)
        await runs.cancel_run(first.run_id)
        await runs.create_run("fourth")
        assert await runs.get_run("second") is None
        assert await runs.get_run("first") is not None
        assert await runs.get_run(running.run_id) is not None
        await runs.create_run("fifth")
        assert await runs.get_run("first") is None
        assert backend.run_count() == 3

    run_async(scenario())


def test_runs_still_going_are_never_evicted(run_async: Any) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend(max_runs=2)
        runs = RunManager(EventBus(backend))
        await runs.create_run("a")
        await runs.create_run("b")
        with pytest.raises(BackendError, match=r"all 2 runs .* are still going"):
            await runs.create_run("c")
        assert {r.run_id for r in await runs.list_runs()} == {"a", "b"}
        await runs.cancel_run("a")
        await runs.create_run("c")  # room again: "a" finished and is forgotten
        assert await runs.get_run("a") is None

    run_async(scenario())


def test_retention_forgets_finished_runs_and_keeps_running_ones(run_async: Any) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend(ttl_seconds=0.0)
        runs = RunManager(EventBus(backend))
        live = await runs.create_run()
        done = await runs.create_run()
        await runs.cancel_run(done.run_id)
        assert await runs.get_run(done.run_id) is None
        assert await runs.get_run(live.run_id) is not None

    run_async(scenario())


def test_a_deleted_run_leaves_no_trace_in_the_eviction_order(run_async: Any) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend(max_runs=2)
        runs = RunManager(EventBus(backend))
        await runs.create_run("a")
        await runs.cancel_run("a")
        await backend.delete_run("a")
        await runs.create_run("a")  # the id is free again and the new run is going
        await runs.create_run("b")
        with pytest.raises(BackendError):
            await runs.create_run("c")

    run_async(scenario())


def test_max_runs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_runs"):
        InMemoryBackend(max_runs=0)


def test_waiting_for_an_event_within_a_time_limit() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        assert not await wait_set(event, 0.01)  # nothing sets it: False, in time
        assert not await wait_set(event, 0)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the timer's cancel taken back
        asyncio.get_running_loop().call_later(0.01, event.set)
        assert await wait_set(event, 30)
        assert await wait_set(event, None)  # already set
        # cancelled from outside while waiting: the cancellation goes on
        waiter = asyncio.ensure_future(wait_set(asyncio.Event(), 30))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_thread_claims_leave_the_store_as_time_passes(
    run_async: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr("dockrion_events.backends.memory.time.monotonic", clock)

    async def scenario() -> None:
        backend = InMemoryBackend()
        for index in range(1000):
            await backend.claim_thread(f"thread-{index}", f"caller-{index}", 60)
        clock.now += 61  # every claim has expired
        assert await backend.claim_thread("thread-0", "someone-else", 60) == "someone-else"
        claims = backend._threads
        assert claims.expired_count(clock.now) == 0
        assert len(claims) == 1

    run_async(scenario())


def test_thread_claims_are_bounded_and_a_renewal_costs_no_memory(
    run_async: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr("dockrion_events.backends.memory.time.monotonic", clock)

    async def scenario() -> None:
        backend = InMemoryBackend(max_threads=3)
        for index in range(3):
            await backend.claim_thread(f"thread-{index}", "alice", 60)
        with pytest.raises(BackendError, match="max_threads"):
            await backend.claim_thread("thread-3", "alice", 60)
        # a thread already held is renewed however full the store is, and renewals
        # (each one a heap entry that goes stale) never grow the store past a bound
        for _ in range(10_000):
            clock.now += 0.001
            assert await backend.claim_thread("thread-0", "alice", 60) == "alice"
        claims = backend._threads
        assert len(claims) == 3 and claims.heap_size <= 2 * 3 + 64 + 1
        clock.now += 61
        assert await backend.claim_thread("thread-3", "bob", 60) == "bob"  # room again
        with pytest.raises(BackendError, match="max_threads"):
            for index in range(4):
                await backend.claim_resume(f"run-{index}", 60)

    run_async(scenario())


def test_max_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        InMemoryBackend(max_threads=0)
