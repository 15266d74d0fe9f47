"""The loop every wire format runs to send a run's log to one client: batches written as
they become ready, a write while the log is idle, the client's departure watched, a time
limit, and the subscription closed whatever happens.

SSE (`sse.py`) and WebSocket (`websocket.py`) differ only in how they write a batch, what
they send while idle and how they learn that the client left; `follow` is the rest, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum

from dockrion_events import BackendError, EventRecord

from ..deadline import deadline

__all__ = ["Ending", "follow"]


class Ending(Enum):
    """How a subscription ended, when the client did not leave first."""

    DONE = "done"  # the log's terminal event was sent
    TIMEOUT = "timeout"  # the subscription's time ran out; the run goes on


async def follow(
    batches: AsyncIterator[list[EventRecord]],
    *,
    write: Callable[[list[EventRecord]], Awaitable[None]],
    idle: Callable[[int], Awaitable[None]],
    departed: Callable[[], Awaitable[None]],
    gone_errors: tuple[type[BaseException], ...] = (),
    on_disconnect: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> Ending | BackendError | None:
    """Send `batches` (a subscription to a run's log) to one client until the log ends.

    `write` sends a ready batch; `idle(last_sequence)` is called for each empty batch (the
    log is quiet: a heartbeat or a keep-alive); `departed` returns when the client has left
    (it runs beside the loop, which it cancels then). A write that raises one of
    `gone_errors` is a departure too. On departure `on_disconnect` is called once and the
    result is None. Otherwise the result is how the subscription ended, or the
    `BackendError` that ended it (the run may be fine: the client resumes later). The
    subscription is closed in every case, shielded from the cancellation that a departure
    or a shutdown brings. A cancellation from outside (shutdown) propagates."""
    task = asyncio.current_task()
    assert task is not None
    finished = False
    gone = False

    def leave() -> None:
        nonlocal gone
        if not gone:
            gone = True
            if on_disconnect is not None:
                on_disconnect()

    async def watch() -> None:
        await departed()
        if not finished:
            leave()
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        try:
            try:
                async with deadline(timeout):
                    last = -1
                    async for batch in batches:
                        if batch:
                            last = batch[-1].sequence
                            await write(batch)
                        else:
                            await idle(max(last, 0))
                ending: Ending | BackendError = Ending.DONE
            except TimeoutError:
                ending = Ending.TIMEOUT
            except BackendError as exc:
                ending = exc
        finally:
            finished = True
            closing = asyncio.ensure_future(batches.aclose())  # type: ignore[attr-defined]
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                await closing  # finish closing the subscription, then stop
                raise
        return ending
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (shutdown): not ours to swallow
        task.uncancel()  # the client left: nothing more to send
        return None
    except gone_errors:
        leave()  # a write found the client gone before `departed` did
        return None
    finally:
        watcher.cancel()
