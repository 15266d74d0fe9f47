"""What a `StreamContext` holds: the run it emits into, where its events go (its stage),
who started the run, the server's tool policy and events filter, and its cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._batch_stage import BatchStage
from ._staging import DirectStage, Stage
from .auth_context import AuthContext
from .filter import EventsFilter, Redaction
from .models import MANDATORY_EVENT_TYPES
from .sinks import RunLogSink, StreamingSink

if TYPE_CHECKING:
    from ._emit_guards import RunEnding

__all__ = ["ContextState"]


class ContextState:
    """The state and plain accessors of a `StreamContext`; the emit surfaces are apart."""

    def __init__(
        self,
        run_id: str,
        bus: RunLogSink | None = None,
        agent_name: str | None = None,
        framework: str | None = None,
        queue_mode: bool = False,
        events_filter: EventsFilter | None = None,
        streaming_sink: StreamingSink | None = None,
        *,
        max_pending: int = 10_000,
        max_pending_bytes: int | None = None,
        finish_patience: float = 60.0,
        first_sequence: int = 0,
    ) -> None:
        self._stage: Stage
        self._direct: DirectStage | None = None  # queue mode
        if queue_mode:
            self._stage = self._direct = DirectStage(run_id, streaming_sink)
        elif bus is None:
            raise ValueError("StreamContext needs a bus (or queue_mode=True)")
        else:
            self._stage = BatchStage(
                run_id,
                bus,
                max_pending=max_pending,
                max_pending_bytes=max_pending_bytes,
                finish_patience=finish_patience,
            )
        # A run's new attempt goes on from the log's next sequence (a queued run taken over).
        self._stage.next_sequence = first_sequence
        self._run_id = run_id
        self._thread_id: str | None = None
        self._auth = AuthContext()
        self._tool_check: Callable[[str], bool] | None = None
        self._redaction: Redaction | None = None
        self._ending: RunEnding | None = None
        self._bus = bus
        self._agent_name = agent_name
        self._framework = framework
        self._queue_mode = queue_mode
        self._events_filter = events_filter
        self._streaming_sink = streaming_sink
        with contextlib.suppress(RuntimeError):
            self.bind_loop(asyncio.get_running_loop())

    # --- properties --------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def thread_id(self) -> str | None:
        """The conversation this run continues (`?thread_id=`), or None."""
        return self._thread_id

    @thread_id.setter
    def thread_id(self, value: str | None) -> None:
        self._thread_id = value

    @property
    def auth(self) -> AuthContext:
        """Who started this run (anonymous when the server does not authenticate)."""
        return self._auth

    @auth.setter
    def auth(self, value: AuthContext) -> None:
        self._auth = value

    def is_tool_allowed(self, name: str) -> bool:
        """Whether the deployment's tool policy lets this run call tool `name` (every tool
        is allowed when the server sets no policy)."""
        return self._tool_check is None or self._tool_check(name)

    @property
    def tool_check(self) -> Callable[[str], bool] | None:
        return self._tool_check

    @tool_check.setter
    def tool_check(self, value: Callable[[str], bool] | None) -> None:
        self._tool_check = value

    @property
    def sink(self) -> RunLogSink | None:
        """Where this context's events go (the bus), None in queue mode."""
        return self._bus

    @property
    def queue_mode(self) -> bool:
        return self._queue_mode

    @property
    def events_filter(self) -> EventsFilter | None:
        return self._events_filter

    @events_filter.setter
    def events_filter(self, value: EventsFilter | None) -> None:
        self._events_filter = value

    @property
    def streaming_sink(self) -> StreamingSink | None:
        return self._streaming_sink

    @property
    def cancelled(self) -> bool:
        return self._stage.cancel_reason is not None

    @property
    def closed(self) -> bool:
        return self._stage.closed_by is not None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the sink; worker-thread emits are handed to it. Call it on
        that loop's thread (a context made inside the loop is bound already)."""
        self._stage.bind_loop(loop)

    # --- cancellation ------------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> None:
        """Mark the run cancelled: the agent's next emit raises `RunCancelledError`."""
        self._stage.cancel(reason)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the cancelling thread) when the run is cancelled."""
        self._stage.on_cancel(callback)

    async def flush(self) -> None:
        """Wait until every event emitted so far is in the log."""
        await self._stage.flush()

    def _allowed(self, event_type: str, custom_name: str | None = None) -> bool:
        if self._events_filter is None or event_type in MANDATORY_EVENT_TYPES:
            return True
        if custom_name is not None:
            return self._events_filter.allows_custom(custom_name)
        return self._events_filter.is_allowed(event_type)
