"""Conversation threads (`?thread_id=`): which caller a thread belongs to.

A thread belongs to the caller that used it first; to anyone else it does not exist (404),
on every instance when the backend is Redis. Ownership lasts as long as the thread's
retention (`threads.ttl_seconds` after its last run, each run renewing it; unset, until the
thread is deleted), so a thread's state is never handed to another caller while it is kept.
"""

from __future__ import annotations

import math
import re
import uuid

from starlette.requests import Request

from dockrion_events import EventBackend, InMemoryBackend

from ..agents import Agent, RunOptions
from ..auth import principal_of
from ..errors import RuntimeHTTPError
from .thread_turns import ThreadTurns

__all__ = ["RESUME_CLAIM_SECONDS", "THREAD_ID_PATTERN", "ThreadRegistry"]

# Anchored for JSON Schema readers (OpenAPI); checked with fullmatch, as `$` alone also
# matches before a trailing newline.
THREAD_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# How long an answered interrupt stays answered (a second resume of it is refused).
RESUME_CLAIM_SECONDS = 30 * 24 * 3600


class ThreadRegistry:
    """Claims threads for callers in the events backend (a process-local one when the
    runtime serves no background runs)."""

    def __init__(
        self,
        turns: ThreadTurns | None = None,
        max_threads: int = 200_000,
        ttl_seconds: float | None = None,
    ) -> None:
        self.backend: EventBackend = InMemoryBackend(max_threads=max_threads)
        self.turns = turns  # one run at a time per thread
        # how long a thread stays its caller's after its last run (None: until deleted)
        self.ownership_seconds = math.inf if ttl_seconds is None else ttl_seconds

    async def claim(self, request: Request, agent: Agent, thread_id: str) -> RunOptions:
        """Options for a run on `thread_id` by this request's caller; 400 for a bad id or an
        agent that keeps no threads, 404 for another caller's thread."""
        if not THREAD_ID_PATTERN.fullmatch(thread_id):
            raise RuntimeHTTPError(
                f"Invalid thread id {thread_id[:40]!r}: use 1 to 128 letters, digits, '_', "
                "'.', ':' or '-', starting with a letter or digit",
                "VALIDATION_ERROR",
            )
        refusal = agent.thread_refusal()
        if refusal is not None:
            raise RuntimeHTTPError(refusal, "VALIDATION_ERROR")
        owner = principal_of(request).id or ""
        if await self.backend.claim_thread(thread_id, owner, self.ownership_seconds) != owner:
            raise RuntimeHTTPError(f"Thread '{thread_id}' not found", "NOT_FOUND")
        turns = self.turns
        turn = await turns.take(self.backend, request, thread_id, agent) if turns else None
        return RunOptions(thread_id=thread_id, turn=turn)

    async def options(
        self, request: Request, agent: Agent, *, background: bool = False
    ) -> RunOptions | None:
        """The thread of a new run: `?thread_id=` when given; otherwise a new thread of its
        own when the agent cannot run without one (a graph compiled with a checkpointer) or,
        for a background run, when it resumes interrupts from threads (a graph given the
        runtime's checkpointer), so that an interrupted run can be resumed; otherwise None."""
        # no query string at all (the usual case): no parsing
        thread_id = request.query_params.get("thread_id") if request.scope["query_string"] else None
        if self.turns is not None:
            self.turns.strategy(request)  # a bad one is refused, thread or not
        if thread_id is None:
            if not (agent.needs_thread or (background and agent.resumes_on_threads)):
                return None
            thread_id = f"run-{uuid.uuid4().hex}"
        return await self.claim(request, agent, thread_id)
