"""Worker threads for sync agent code: the agent's call goes to an idle thread through one
queue, and its result comes back to the event loop in one callback.

`loop.run_in_executor` with a `ThreadPoolExecutor` does the same through a
`concurrent.futures.Future` chained to an asyncio one, with locks, an idle semaphore and a
wrapper per call: about five times the CPU per hand-off (`hatch run bench:app`), and every
run of a sync agent makes two hand-offs. A thread is started when no idle one is waiting,
up to `max_workers`; calls beyond that wait in the queue. A call whose awaiting task is
cancelled while it waits (a run cancelled before its agent started) leaves the queue: it
drops its function and arguments at once and never runs. Threads are daemons: an agent
stuck in a blocking call does not keep the process alive after shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["AgentThreads"]

log = logging.getLogger("dockrion.runtime")


class _Call:
    """One queued call; `function` is None once it was withdrawn (or taken by a thread)."""

    __slots__ = ("args", "function", "future", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self.loop = loop
        self.future = future
        self.function: Callable[..., Any] | None = function
        self.args = args

    def take(self) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """The function and arguments for a thread to run, or None when withdrawn."""
        with _taking:
            function, args = self.function, self.args
            self.function, self.args = None, ()
        return None if function is None else (function, args)

    def withdraw(self) -> bool:
        """Drop the call before a thread takes it; False when a thread already has it."""
        with _taking:
            waiting = self.function is not None
            self.function, self.args = None, ()
        return waiting


# Taking and withdrawing race between a worker thread and the loop: one lock decides.
_taking = threading.Lock()


class AgentThreads:
    def __init__(self, max_workers: int, name_prefix: str = "dockrion-agent") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._name_prefix = name_prefix
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a call
        self._closed = False
        self.withdrawn = 0  # calls that left the queue because their task was cancelled

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a worker thread; its result or its exception here. If the
        awaiting task is cancelled while the call waits in the queue, the call never runs;
        once a thread runs it, it finishes there (a sync agent stops at its next emit) and
        its result is dropped."""
        if self._closed:
            raise RuntimeError("the agent threads are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            start = self._idle == 0 and len(self._threads) < self.max_workers
            if not start:
                self._idle -= 1  # this call takes an idle thread (or waits for one)
        call = _Call(loop, future, function, args)
        self._calls.put(call)
        if start:
            self._start_thread()
        try:
            return await future
        except asyncio.CancelledError:
            if call.withdraw():
                self.withdrawn += 1
            raise

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work,
            name=f"{self._name_prefix}_{len(self._threads)}",
            daemon=True,
        )
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        take = self._calls.get
        while True:
            call = take()
            if call is None:
                return
            taken = call.take()
            if taken is None:  # withdrawn while it waited: its task is gone
                with self._lock:
                    self._idle += 1
                continue
            function, args = taken
            setter: Callable[[asyncio.Future[Any], Any], None]
            try:
                value = function(*args)
                setter = _set_result
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                value, setter = exc, _set_exception
            # Idle before the result is out: the caller's next call finds this thread.
            with self._lock:
                self._idle += 1
            _deliver(call.loop, setter, call.future, value)
            del call, taken, function, args, value  # nothing of the run outlives it here

    def shutdown(self) -> None:
        """Stop the threads once their current call returns; queued calls never run (their
        tasks were cancelled by then)."""
        self._closed = True
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None and call.withdraw():
                _deliver(call.loop, _cancel, call.future, None)
        for _ in self._threads:
            self._calls.put(None)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    setter: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    try:
        loop.call_soon_threadsafe(setter, future, value)
    except RuntimeError:  # the loop is closed: nobody awaits the result any more
        log.debug("agent call finished after its event loop closed")


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _cancel(future: asyncio.Future[Any], _: Any) -> None:
    future.cancel()
