"""A loaded agent, called without blocking the event loop: sync code runs in a worker
thread (with the caller's contextvars), async code is awaited."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dockrion_events import RunCancelledError, StreamContext, context_scope

from .chunks import emit_chunk, emit_chunk_sync
from .worker_threads import AgentThreads

__all__ = [
    "Agent",
    "AgentLoadError",
    "AgentResult",
    "InvalidOutputError",
    "RunOptions",
    "accumulate",
]


class AgentLoadError(Exception):
    """The agent module or callable cannot be loaded; the message says which and why (for
    the log). `public` says it without any text the agent's own code raised, for callers
    (`/ready`, 503 bodies)."""

    code = "AGENT_LOAD_ERROR"

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = message if public is None else public


class InvalidOutputError(Exception):
    """The agent's output cannot be returned (for example, it is not JSON)."""

    code = "INVALID_OUTPUT"


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run continues a conversation: the thread it belongs to and, when it resumes an
    interrupted run, the value to resume with and state keys to set as it resumes."""

    thread_id: str | None = None
    resume: Any = None
    resuming: bool = False
    update: dict[str, Any] | None = None
    # the run's turn on its thread (one run at a time per thread), held or waited for
    turn: Any = None
    # what its thread keeps of the run (input, status, output), written as it goes
    record: Any = None


@dataclasses.dataclass(slots=True)
class ThreadState:
    """What an agent keeps of a thread: its latest values, when they last changed, and
    whether the thread waits at an interrupt."""

    values: Any
    updated_at: datetime | None = None
    interrupted: bool = False


@dataclasses.dataclass(slots=True)
class AgentResult:
    """What a framework adapter returns: the output, and metadata for the run (token usage,
    whether it stopped at an interrupt)."""

    output: Any
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class Agent:
    """A loaded agent: `await agent.invoke(payload, context)` runs it to its output."""

    def __init__(
        self,
        call: Callable[..., Any],
        *,
        wants_context: bool,
        target: str,
        stream: Callable[..., Any] | None = None,
        threads: AgentThreads | None = None,
    ) -> None:
        self._call = call
        self._threads = threads
        self._stream = stream
        self._wants_context = wants_context
        self._is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            getattr(call, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.target = target

    needs_thread = False  # True for agents that cannot run without a thread

    @property
    def resumes_on_threads(self) -> bool:
        """Whether a run that stops at an interrupt continues from what a thread keeps (a
        LangGraph graph with a checkpointer, its own or the runtime's): a background run
        sent without a thread then gets one of its own, so that it can be resumed."""
        return self.needs_thread

    # The top-level input keys the agent reads, when it declares them (a LangGraph graph's
    # state keeps only those); None: it is given its input whole.
    input_keys: frozenset[str] | None = None

    # True for agents that keep threads only with a checkpointer the runtime gives them
    # (`use_checkpointer`): a LangGraph graph compiled without one.
    wants_checkpointer = False

    def use_checkpointer(self, checkpointer: Any) -> None:
        """Keep threads with `checkpointer` (only called when `wants_checkpointer`)."""
        raise NotImplementedError

    def thread_refusal(self) -> str | None:
        """Why this agent cannot continue a thread (`?thread_id=`), or None. A handler gets
        the thread id in its context and keeps its own memory."""
        return None

    async def thread_state(self, thread_id: str) -> ThreadState | None:
        """The thread as the agent keeps it (a LangGraph graph's checkpoints), or None when
        the agent keeps nothing of it."""
        return None

    async def forget_thread(self, thread_id: str) -> None:
        """Delete what the agent keeps of the thread (its checkpoints)."""

    async def roll_back_thread(self, thread_id: str, since: float) -> None:
        """Remove what the agent kept of the thread since `since` (Unix seconds): the
        progress of a run cancelled under multitask_strategy rollback."""

    async def threads_older_than(self, cutoff: float) -> list[str]:
        """The threads the agent keeps that nothing touched since `cutoff` (Unix seconds)."""
        return []

    async def pending_interrupts(self, thread_id: str) -> set[str] | None:
        """The ids of the interrupts `thread_id` waits at, from the agent's own memory, or
        None when the agent cannot tell."""
        return None

    async def invoke(
        self,
        payload: Any,
        context: StreamContext | None,
        *,
        streaming: bool = True,
        options: RunOptions | None = None,
    ) -> Any:
        """Run the agent to its output. A runner that can stream is streamed when
        `streaming` (its chunks become events); `/invoke`, where nobody reads the events,
        calls its `invoke`/`ainvoke` instead."""
        if self._stream is not None and context is not None and streaming:
            with context_scope(context):
                return await self._invoke_stream(payload, context)
        args = (payload, context) if self._wants_context else (payload,)
        with context_scope(context):
            if self._is_async:
                return await self._call(*args)
            result = await self.in_thread(_unless_cancelled(self._call, context), *args)
            if inspect.isawaitable(result):
                return await result
            return result

    async def in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run sync agent code in a worker thread, with this task's contextvars (so
        get_current_context() works there); the loop stays free. The runtime's pool is
        large: each running sync agent holds a thread for its whole run."""
        context = contextvars.copy_context()
        if self._threads is not None:
            return await self._threads.run(context.run, function, *args)
        loop = asyncio.get_running_loop()  # an agent loaded outside a runtime
        return await loop.run_in_executor(None, functools.partial(context.run, function, *args))

    async def _invoke_stream(self, payload: Any, context: StreamContext) -> Any:
        """Entrypoint runners with `astream`/`stream`: each chunk becomes an event. The
        output is the data of the last `{"type": "result", "data": ...}` chunk; without
        one, the streamed chunks accumulated (see `accumulate`)."""
        stream = self._stream
        assert stream is not None
        result: list[Any] = []
        chunks: list[Any] = []
        produced = stream(payload)
        if hasattr(produced, "__aiter__"):
            async for chunk in produced:
                chunks.append(chunk)
                await emit_chunk(context, chunk, result)
        else:

            def consume() -> None:
                for chunk in produced:
                    chunks.append(chunk)
                    emit_chunk_sync(context, chunk, result)

            await self.in_thread(consume)
        if result:
            return result[-1]
        return accumulate(chunks)


def accumulate(chunks: list[Any]) -> Any:
    """The output of a stream that sent no result chunk, the way LangChain accumulates
    streamed chunks: strings and token chunks are concatenated, chunks that support `+`
    (LangChain message chunks) are added together, otherwise the last chunk is the output
    (None for an empty stream)."""
    parts = [
        chunk.get("content", "")
        if isinstance(chunk, dict) and chunk.get("type") == "token"
        else chunk
        for chunk in chunks
        if not (isinstance(chunk, dict) and chunk.get("type") not in (None, "token"))
    ]
    if not parts:
        return chunks[-1] if chunks else None
    if all(isinstance(part, str) for part in parts):
        return "".join(parts)
    total = parts[0]
    try:
        for part in parts[1:]:
            total = total + part
    except TypeError:
        return parts[-1]
    return total


def _unless_cancelled(
    function: Callable[..., Any], context: StreamContext | None
) -> Callable[..., Any]:
    """`function`, which a worker thread calls only if the run was not cancelled meanwhile:
    a cancellation that lands while the call waits for a thread withdraws it from the queue,
    and this check covers the moment between the queue and the thread, so a cancelled run
    never starts its agent."""
    if context is None:
        return function

    def call(*args: Any) -> Any:
        if context.cancelled:
            raise RunCancelledError(f"run '{context.run_id}' was cancelled before it started")
        return function(*args)

    return call
