"""Waiting for an `asyncio.Event` with a time limit, without the task `asyncio.wait_for`
makes around the wait on Python 3.11 (a backend's readers wait once per wake-up each)."""

from __future__ import annotations

import asyncio

__all__ = ["wait_set"]


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Whether `event` was set within `timeout` seconds (None: no limit)."""
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if timeout <= 0:
        return False
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always called from a task
        raise RuntimeError("wait_set() must be called from a task")
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        if not event.is_set():  # set in this same turn: the task is about to resume
            expired = True
            task.cancel()

    handle = task.get_loop().call_later(timeout, expire)
    try:
        await event.wait()
        return True
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            return False
        raise
    finally:
        handle.cancel()
