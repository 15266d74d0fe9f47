"""AgentThreads: sync agent code in worker threads, results back on the loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from dockrion_runtime.agents import AgentThreads

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_a_call_runs_in_a_worker_thread_and_returns_its_result() -> None:
    async def main() -> tuple[str, int]:
        threads = AgentThreads(4)
        try:
            name = await threads.run(lambda: threading.current_thread().name)
            return name, await threads.run(pow, 2, 10)
        finally:
            threads.shutdown()

    name, value = asyncio.run(main())
    assert name.startswith("dockrion-agent") and name != threading.current_thread().name
    assert value == 1024


def test_an_exception_reaches_the_awaiting_task() -> None:
    def fail() -> None:
        raise KeyError("missing")

    async def main() -> None:
        threads = AgentThreads(2)
        try:
            with pytest.raises(KeyError, match="missing"):
                await threads.run(fail)
        finally:
            threads.shutdown()

    asyncio.run(main())


def test_contextvars_follow_when_the_caller_runs_in_a_copied_context() -> None:
    async def main() -> str:
        threads = AgentThreads(2)
        WHO.set("agent")
        try:
            return await threads.run(contextvars.copy_context().run, WHO.get)  # type: ignore[no-any-return]
        finally:
            threads.shutdown()

    assert asyncio.run(main()) == "agent"


def test_at_most_max_workers_threads_and_every_queued_call_runs() -> None:
    async def main() -> tuple[int, list[int]]:
        threads = AgentThreads(3)
        running = 0
        most = 0
        lock = threading.Lock()
        gate = threading.Event()

        def work(index: int) -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            gate.wait(30)
            with lock:
                running -= 1
            return index

        try:
            calls = [asyncio.ensure_future(threads.run(work, index)) for index in range(12)]
            for _ in range(1000):  # let three calls start (bounded in count and time)
                await asyncio.sleep(0.005)
                with lock:
                    if running == 3:
                        break
            gate.set()
            results = await asyncio.wait_for(asyncio.gather(*calls), 30)
            return most, results
        finally:
            threads.shutdown()

    most, results = asyncio.run(main())
    assert most == 3
    assert results == list(range(12))


def test_threads_are_reused() -> None:
    async def main() -> set[str]:
        threads = AgentThreads(8)
        try:
            names = set()
            for _ in range(50):
                names.add(await threads.run(lambda: threading.current_thread().name))
            return names
        finally:
            threads.shutdown()

    assert len(asyncio.run(main())) == 1  # one call at a time: one thread serves them all


def test_a_cancelled_caller_drops_the_result_and_the_thread_serves_the_next_call() -> None:
    async def main() -> str:
        threads = AgentThreads(1)
        release = threading.Event()
        started = threading.Event()

        def slow_call() -> bool:
            started.set()
            return release.wait(30)

        try:
            slow = asyncio.ensure_future(threads.run(slow_call))
            for _ in range(3000):  # until the thread has taken the call: cancelled mid-call
                if started.is_set():
                    break
                await asyncio.sleep(0.01)
            assert started.is_set()
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            release.set()
            return await asyncio.wait_for(threads.run(lambda: "next"), 30)  # type: ignore[no-any-return]
        finally:
            threads.shutdown()

    assert asyncio.run(main()) == "next"


def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    async def main() -> None:
        threads = AgentThreads(1)
        release = threading.Event()
        started = threading.Event()

        def blocker() -> bool:
            started.set()
            return release.wait(30)

        busy = asyncio.ensure_future(threads.run(blocker))
        queued = asyncio.ensure_future(threads.run(lambda: "never"))
        for _ in range(3000):  # until the thread has taken the first call
            if started.is_set():
                break
            await asyncio.sleep(0.01)
        threads.shutdown()
        release.set()
        assert await asyncio.wait_for(busy, 30) is True
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 30)
        with pytest.raises(RuntimeError, match="shut down"):
            await threads.run(lambda: None)

    asyncio.run(main())
