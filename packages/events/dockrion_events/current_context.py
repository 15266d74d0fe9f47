"""The context of the run in progress, for code that was not handed one.

A `ContextVar`, so asyncio tasks inherit it when created and `asyncio.to_thread` carries it
into the worker thread; a thread started by hand sees None until `context_scope` sets it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import StreamContext

__all__ = ["context_scope", "get_current_context", "set_current_context"]

_current: ContextVar[StreamContext | None] = ContextVar("dockrion_stream_context", default=None)


def get_current_context() -> StreamContext | None:
    """The context of the run this code executes for, or None outside a run."""
    return _current.get()


def set_current_context(context: StreamContext | None) -> None:
    """Make `context` current for the rest of this task or thread (prefer `context_scope`)."""
    _current.set(context)


@contextlib.contextmanager
def context_scope(context: StreamContext | None) -> Iterator[StreamContext | None]:
    """Make `context` current inside the block; the previous one comes back after."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
