"""StreamContext: how agent code emits events, from async code or from worker threads.

Async code awaits `emit_*`; sync code (a handler in a worker thread) calls `sync_emit_*`.
An `emit_*` called with no event loop running in its thread (a plain `def` handler
forgetting the `sync_` prefix) raises `SyncEmitRequiredError` at the call, naming the
`sync_emit_*` to use, instead of making a coroutine nothing awaits (an event never sent).
Either way the event is numbered at once, in emit order, and reaches the run's log in
batches. Events a run's filter drops take no number. After the terminal event every emit
raises `StreamClosedError`; after a cancellation the next one raises `RunCancelledError`,
so a sync agent stops at its next emit.

A server that runs agent code sets the context's `redaction` (everything an event carries
is rewritten before it is logged) and reserves the terminal events to itself
(`reserve_terminal_events`): agent code returns or raises, and the server ends the run.
"""

from __future__ import annotations

from ._async_emit import AsyncEmitters
from ._emit_guards import RunEnding
from ._sync_emit import SyncEmitters
from .filter import Redaction, TokenFilter
from .models import BaseEvent

__all__ = ["Redaction", "RunEnding", "StreamContext", "TokenFilter"]


class StreamContext(AsyncEmitters, SyncEmitters):
    """Emit events for one run. Async methods for async code, `sync_*` for sync code.

    With a bus (an `EventBus`), events go to the run's log. With `queue_mode=True` they are
    offered to `streaming_sink` (a `StreamingSink`), and kept in the context's own queue
    when it declines or there is none, for `drain_queued_events()`.
    """

    # --- queue mode ----------------------------------------------------------------------

    def drain_queued_events(self) -> list[BaseEvent]:
        """The events kept in queue mode, oldest first; empties the queue."""
        if self._direct is None:
            return []
        with self._direct.lock:
            return self._direct.queue.drain()

    def has_queued_events(self) -> bool:
        return self.queue_size() > 0

    def queue_size(self) -> int:
        return len(self._direct.queue) if self._direct is not None else 0

    def __repr__(self) -> str:
        return f"StreamContext(run_id={self._run_id!r}, next_sequence={self._stage.next_sequence})"
